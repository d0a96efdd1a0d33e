"""Ingest while the broker is briefly unreachable: the producer answers 503, a retrying client (the
emitter) re-sends, and every event lands in ClickHouse exactly once through the real sink.

A broker of its own (never the session one) behind a TCP proxy that it advertises, so every client
(ingest, sink) reaches it only through the proxy; the outage cuts every connection and refuses new
ones for a few seconds while the broker keeps its data, as a network partition or a broker failover
does. (Restarting Tansu itself would lose its memory-only topics, which no real broker does.)
"""

from __future__ import annotations

import asyncio
import time

import pytest

from gateledger.kafka import KafkaTarget, ensure_gateledger_topics
from gateledger.net import free_port
from gateledger.settings import Settings
from gateledger.stack.broker import TansuBroker
from producers.emitter import AsyncEmitter, make_event
from producers.emitter.events import RetryPolicy
from producers.ingest.settings import IngestSettings
from tests.producers.ingestutil import ingest_client
from tests.tcpproxy import TcpProxy

pytestmark = pytest.mark.fault


def _count(ch_client, db: str) -> tuple[int, int]:
    (n, distinct), = ch_client.query(
        f"SELECT count(), uniqExact(id) FROM `{db}`.raw_events FINAL WHERE source = 'acme/fault'").result_rows
    return int(n), int(distinct)


async def _wait_landed(ch_client, db: str, want: int, timeout_s: float = 60) -> tuple[int, int]:
    # Polled from the event loop's thread: chDB is not to be used from two threads at once.
    deadline = time.monotonic() + timeout_s
    while True:
        got = _count(ch_client, db)
        if got[1] >= want or time.monotonic() > deadline:
            return got
        await asyncio.sleep(0.3)


def test_broker_unreachable_during_ingest_every_event_lands_exactly_once(
        settings: Settings, ch_client, tmp_path, monkeypatch: pytest.MonkeyPatch) -> None:
    from tests.sinks.conftest import fast_sink, running_sink

    proxy_port = free_port()
    broker = TansuBroker(log_path=tmp_path / "own-broker.log", advertised_port=proxy_port)
    broker.start()
    proxy = TcpProxy(proxy_port, broker.host, broker.port).start()
    bootstrap = f"127.0.0.1:{proxy_port}"
    monkeypatch.setenv("GATELEDGER_KAFKA_BOOTSTRAP_SERVERS", bootstrap)
    s = Settings()
    db = s.clickhouse.database
    target = KafkaTarget(bootstrap, True, s.core.topic_prefix)
    statuses: list[int] = []
    try:
        async def main() -> None:
            await ensure_gateledger_topics(s.kafka, target)
            ingest = IngestSettings(publish_timeout_s=2.0, retry_after_s=1)
            kafka = s.kafka.model_copy(update={"request_timeout_ms": 1000})
            async with running_sink(s, fast_sink()), ingest_client(s, ingest, target=target, kafka=kafka) as http:
                url = str(http.make_url("")).rstrip("/")

                def event(i: int) -> dict:
                    return make_event("gateledger.llm.call", {"provider": "openai", "model": "gpt-4o",
                                                              "input_tokens": i, "output_tokens": 1},
                                      source="acme/fault", id=f"ev-{i}", tenant="acme")

                errors: list[object] = []
                async with AsyncEmitter(url, batch_size=50, flush_interval_s=0.2,
                                        retry=RetryPolicy(initial_s=0.2, max_s=1.0, give_up_after_s=120),
                                        on_error=errors.append) as em:
                    for i in range(300):
                        await em.emit(event(i))
                    await em.flush()
                    assert await _wait_landed(ch_client, db, 300) == (300, 300)
                    await asyncio.to_thread(proxy.cut)
                    for i in range(300, 600):
                        await em.emit(event(i))
                    # The emitter is retrying 503s now; the server says so to anyone.
                    r = await http.post("/v1/cloudevents", json=event(10_000))
                    statuses.append(r.status)
                    await asyncio.sleep(3.0)
                    await asyncio.to_thread(proxy.restore)
                    for i in range(600, 700):
                        await em.emit(event(i))
                    await em.flush()
                assert not errors, errors
                got = await _wait_landed(ch_client, db, 700)
                assert got == (700, 700), got

        asyncio.run(main())
    finally:
        proxy.stop()
        broker.stop()
    assert statuses == [503]
