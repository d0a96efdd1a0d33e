"""The worker's producer is idempotent on Apache Kafka when asked (compose), and plain on Tansu."""

from __future__ import annotations

import asyncio

import pytest

from gateledger.kafka import KafkaTarget
from gateledger.settings import Settings
from stream_processors.app import create_app


@pytest.mark.parametrize("idempotent", [True, False])
def test_producer_idempotence_follows_the_setting(gl_env, monkeypatch, idempotent: bool) -> None:
    monkeypatch.setenv("GATELEDGER_KAFKA_ENABLE_IDEMPOTENCE", str(idempotent).lower())

    async def check() -> None:
        app = create_app(Settings(), target=KafkaTarget("127.0.0.1:1", False, "t."))
        assert app.conf.processing_guarantee.value == "at_least_once"
        producer = app.producer._new_producer()
        try:
            # aiokafka keeps a transaction manager exactly when idempotence is on.
            assert (producer._txn_manager is not None) is idempotent
        finally:
            await producer.stop()

    asyncio.run(check())


def test_credentials_follow_the_kafka_settings() -> None:
    from faust.auth import SASLCredentials, SSLCredentials

    from gateledger.settings import KafkaSettings
    from stream_processors.app import broker_credentials

    assert broker_credentials(KafkaSettings()) is None
    assert isinstance(broker_credentials(KafkaSettings(security_protocol="SSL")), SSLCredentials)
    sasl = broker_credentials(KafkaSettings(security_protocol="SASL_SSL", sasl_mechanism="SCRAM-SHA-512",
                                            sasl_username="gl", sasl_password="pw"))
    assert isinstance(sasl, SASLCredentials)
    assert (sasl.username, sasl.password, sasl.mechanism.value) == ("gl", "pw", "SCRAM-SHA-512")
    assert sasl.protocol.value == "SASL_SSL"


def test_faust_keeps_its_files_in_the_data_dir(gl_env, tmp_path, monkeypatch) -> None:
    # The working directory is read-only in the container: nothing may be written there.
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    settings = Settings()
    app = create_app(settings, target=KafkaTarget("127.0.0.1:1", False, "t."))
    assert app.conf.datadir.is_relative_to(settings.core.data_dir) and app.conf.datadir.parent.is_dir()
    assert app.conf.tabledir.is_relative_to(settings.core.data_dir)
    assert not list(cwd.iterdir())


def test_the_producer_batches_as_large_as_the_settings_say(gl_env, monkeypatch) -> None:
    # faust's own default is aiokafka's 16 KiB: a burst of outputs would go out in many small requests.
    monkeypatch.setenv("GATELEDGER_KAFKA_MAX_BATCH_SIZE", str(300 * 1024))

    async def check() -> None:
        app = create_app(Settings(), target=KafkaTarget("127.0.0.1:1", False, "t."))
        producer = app.producer._new_producer()
        try:
            assert producer._message_accumulator._batch_size == 300 * 1024
        finally:
            await producer.stop()

    asyncio.run(check())
