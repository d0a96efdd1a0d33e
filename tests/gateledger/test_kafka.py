"""Consumer-group timeouts and fetch waits: short on Tansu (each join waits half the session
timeout there), within Apache Kafka's limits elsewhere, and what a setting asks for when set."""

from __future__ import annotations

import asyncio

import pytest

from gateledger.kafka import KafkaTarget, group_timeouts, make_consumer
from gateledger.settings import KafkaSettings, Settings
from stream_processors.app import create_app

TANSU = KafkaTarget("127.0.0.1:1", True, "t.")
KAFKA = KafkaTarget("127.0.0.1:1", False, "t.")


def test_group_timeouts_default_per_broker_and_follow_the_settings() -> None:
    assert group_timeouts(KafkaSettings(), TANSU) == (2000, 500)
    # Apache Kafka refuses a session under group.min.session.timeout.ms (6 s by default).
    assert group_timeouts(KafkaSettings(), KAFKA) == (6000, 1000)
    assert group_timeouts(KafkaSettings(session_timeout_ms=15000), KAFKA) == (15000, 1000)
    assert group_timeouts(KafkaSettings(session_timeout_ms=3000), TANSU) == (3000, 750)
    explicit = KafkaSettings(session_timeout_ms=3000, heartbeat_interval_ms=200)
    assert group_timeouts(explicit, TANSU) == (3000, 200)


@pytest.mark.parametrize(("target", "session_ms", "heartbeat_ms"), [(TANSU, 2000, 500), (KAFKA, 6000, 1000)])
def test_consumers_and_the_worker_use_them(gl_env, monkeypatch, target: KafkaTarget, session_ms: int,
                                           heartbeat_ms: int) -> None:
    monkeypatch.setenv("GATELEDGER_KAFKA_FETCH_MAX_WAIT_MS", "150")

    async def check() -> None:
        settings = Settings()
        consumer = make_consumer(settings.kafka, target, group_id="g")
        assert (consumer._session_timeout_ms, consumer._heartbeat_interval_ms) == (session_ms, heartbeat_ms)
        app = create_app(settings, target=target)
        assert (app.conf.broker_session_timeout, app.conf.broker_heartbeat_interval) == (
            session_ms / 1000, heartbeat_ms / 1000)
        # faust hard-codes a 1.5 s fetch wait; the worker's consumer takes the setting's instead.
        worker_consumer = app.consumer._thread._create_worker_consumer(app.consumer.transport)
        assert worker_consumer._fetch_max_wait_ms == 150
        assert worker_consumer._session_timeout_ms == session_ms

    asyncio.run(check())
