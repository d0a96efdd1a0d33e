"""The emitter library against the real ingest service and broker: batching, rejections, 413 splits, 503 retries."""

from __future__ import annotations

import asyncio
import random
import time
from datetime import UTC, datetime
from pathlib import Path

from gateledger.kafka import KafkaTarget, ensure_gateledger_topics, wait_for_broker
from gateledger.settings import Settings
from gateledger.stack.broker import TansuBroker
from gateledger.topics import Topic
from producers import telemetry
from producers.emitter import AsyncEmitter, EmitError, Emitter, RetryPolicy, make_event
from producers.emitter.events import Attempts, Step
from producers.ingest.settings import IngestSettings
from tests.producers.ingestutil import ingest_client
from tests.producers.kafkaread import read_topic
from tests.samples import TRACE, TRACEPARENT

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def event(i: int, **kw: object) -> dict:
    kw.setdefault("tenant", "acme")
    return make_event("gateledger.llm.call", {"model": "gpt-4o", "input_tokens": i, "contact": "bob@example.com"},
                      source="acme/gateway", id=f"call-{i}", time=T0, request_id=f"req-{i}",
                      traceparent=TRACEPARENT, **kw)  # type: ignore[arg-type]


def _answered(status: int) -> float:
    """Requests the in-process ingest answered with ``status``, on any route."""
    return sum(s.value for m in telemetry.HTTP_REQUESTS.collect() for s in m.samples
               if s.name.endswith("_total") and s.labels["status"] == str(status))


async def _until_answered(status: int, count: float, timeout_s: float = 30) -> float:
    """Wait until ``count`` requests were answered with ``status``; the monotonic time it was seen."""
    deadline = time.monotonic() + timeout_s
    while _answered(status) < count:
        assert time.monotonic() < deadline, f"only {_answered(status)} answers of {status}, want {count}"
        await asyncio.sleep(0.02)
    return time.monotonic()


def test_make_event_shape() -> None:
    e = event(1, context_id="ctx-1", region="eu")
    assert e["specversion"] == "1.0" and e["id"] == "call-1" and e["time"] == "2026-11-20T10:00:00Z"
    assert e["tenant"] == "acme" and e["requestid"] == "req-1" and e["contextid"] == "ctx-1" and e["region"] == "eu"
    assert make_event("t", {}, source="s")["id"] != make_event("t", {}, source="s")["id"]


def test_async_emitter_batches_and_reports_rejections(settings: Settings) -> None:
    errors: list[EmitError] = []

    async def main() -> None:
        async with ingest_client(settings) as http:
            url = str(http.make_url("/"))
            async with AsyncEmitter(url, batch_size=100, flush_interval_s=0.05, on_error=errors.append) as em:
                for i in range(450):
                    await em.emit(event(i))
                broken = event(999)
                del broken["source"]
                await em.emit(broken)
            assert em.sent == 450
        events = await read_topic(settings, Topic.RAW_CLOUDEVENTS, want=450)
        assert len(events) == 450 and len({e["id"] for e in events}) == 450
        e = next(x for x in events if x["data"]["id"] == "call-7")
        assert e["tenant"] == "acme" and e["request_id"] == "req-7" and e["trace_id"] == TRACE
        assert "bob@example.com" not in str(e["data"])
        assert len(errors) == 1 and errors[0].events[0]["id"] == "call-999"

    asyncio.run(main())


def test_sync_emitter_splits_on_413_and_flush_raises_for_refusals(settings: Settings) -> None:
    async def main() -> None:
        async with ingest_client(settings, IngestSettings(tokens={"tk": "acme"}, max_body_bytes=20_000)) as http:
            url = str(http.make_url("/"))

            def produce() -> int:
                with Emitter(url, token="tk", batch_size=200, flush_interval_s=30) as em:
                    for i in range(300):  # one batch is ~80 kB: split until it fits
                        em.emit(event(i))
                    em.flush()
                    em.emit(event(1000, tenant="globex"))  # not this token's tenant
                    try:
                        em.flush()
                    except EmitError as exc:
                        assert exc.events[0]["id"] == "call-1000" and exc.status == 400
                    else:
                        raise AssertionError("a refused event must be reported")
                    return em.sent

            assert await asyncio.to_thread(produce) == 300
            with Emitter(url, token="wrong", flush_interval_s=30) as bad:
                bad.emit(event(1))
                try:
                    await asyncio.to_thread(bad.flush)
                except EmitError as exc:
                    assert exc.status == 401
                else:
                    raise AssertionError("401 must be reported")
        events = await read_topic(settings, Topic.RAW_CLOUDEVENTS, want=300)
        assert len({e["id"] for e in events}) == 300

    asyncio.run(main())


def test_sync_emitter_retries_through_a_broker_outage(settings: Settings, tmp_path: Path) -> None:
    broker = TansuBroker(log_path=tmp_path / "own-broker.log")  # our own: stopped and restarted here
    broker.start()
    target = KafkaTarget(broker.bootstrap, True, settings.core.topic_prefix)
    # Batches Kafka could not take expire after 1 s, so nothing is in flight when the broker returns.
    kafka = settings.kafka.model_copy(update={"request_timeout_ms": 1000})
    try:
        async def main() -> None:
            ingest = IngestSettings(publish_timeout_s=1.0, retry_after_s=3)
            async with ingest_client(settings, ingest, target=target, kafka=kafka) as http:
                url = str(http.make_url("/"))
                broker.stop()
                em = Emitter(url, batch_size=50, flush_interval_s=0.05,
                             retry=RetryPolicy(initial_s=0.1, max_s=5.0, give_up_after_s=None))
                refused = _answered(503)
                for i in range(120):
                    em.emit(event(i))
                # The emitter really sent a batch and got 503 (not merely nothing sent yet), then waits
                # the 3 s Retry-After before it tries again (its own backoff would retry after 0.1 s).
                first = await _until_answered(503, refused + 1)
                second = await _until_answered(503, refused + 2)
                assert second - first >= 3.0, f"retried {second - first:.2f} s after a 503 with Retry-After: 3"
                assert em.sent == 0
                await asyncio.to_thread(broker.start)
                await wait_for_broker(broker.bootstrap)
                # The restarted broker is empty (memory storage). Topics are created before the
                # emitter's retry: Tansu acknowledges writes to a topic it auto-creates but then
                # loses them when the topic is created explicitly (seen here), which a real Kafka
                # restart (topics persist) never does.
                await ensure_gateledger_topics(kafka, target)
                started = time.monotonic()
                await asyncio.to_thread(em.close)
                assert em.sent == 120 and time.monotonic() - started < 30
            events = await read_topic(settings, Topic.RAW_CLOUDEVENTS, bootstrap=broker.bootstrap, timeout_s=20,
                                      until=lambda got: len({e["data"]["id"] for e in got}) >= 120)
            assert len({e["data"]["id"] for e in events}) == 120, "nothing lost (retries may duplicate, same ids)"

        asyncio.run(main())
    finally:
        broker.stop()


def test_attempts_wait_split_and_give_up_as_the_policy_says() -> None:
    """The one loop body of both emitters: retryable answers wait (Retry-After wins, capped), a 413 of
    several events splits, a refusal ends, and the policy's deadline gives up with the whole batch."""
    now = [0.0]
    attempts = Attempts(RetryPolicy(initial_s=1, max_s=8, give_up_after_s=30), random.Random(1), clock=lambda: now[0])
    batch = [{"id": "a"}, {"id": "b"}]
    waits = [attempts.after(503, "busy", None, batch).wait for _ in range(4)]
    assert all(0.5 <= w <= 8 for w in waits) and attempts.attempt == 4
    assert attempts.after(429, None, "3", batch).wait == 3
    assert attempts.after(0, "connection refused", "60", batch).wait == 8
    assert attempts.after(413, None, None, batch).split
    refused = attempts.after(400, {"rejected": [{"index": 1}]}, None, batch)
    assert refused.sent == 1 and refused.errors and refused.errors[0].events == [{"id": "b"}]
    assert attempts.after(200, None, None, batch) == Step(errors=[], sent=2)
    now[0] = 31
    gave_up = attempts.after(503, "busy", None, batch)
    assert gave_up.errors and gave_up.errors[0].events == batch and "gave up after" in str(gave_up.errors[0])
