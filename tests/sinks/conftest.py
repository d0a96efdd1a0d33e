"""Sink test helpers: publishing to the test's topics, running the sink in-process until it caught up."""

from __future__ import annotations

import asyncio
import contextlib
import time
from collections.abc import AsyncIterator, Iterable
from typing import Any

import pytest

from gateledger.contracts.events import OutputEvent
from gateledger.kafka import consumer_group_lag, ensure_gateledger_topics, make_producer, resolve
from gateledger.settings import Settings
from gateledger.topics import Topic, topic_name
from sinks.clickhouse.main import run_sink, sink_topics
from sinks.clickhouse.service import SinkService
from sinks.clickhouse.settings import SinkSettings
from tests.sinks.events import encode


async def publish(settings: Settings, items: Iterable[tuple[Topic, str, bytes | None]]) -> int:
    """Send (topic, key, value) messages to this test's topics and wait for the acknowledgements."""
    target = resolve(settings.kafka, settings.core)
    await ensure_gateledger_topics(settings.kafka, target)
    producer = make_producer(settings.kafka, target)
    await producer.start()
    n = 0
    try:
        futures = []
        for topic, key, value in items:
            futures.append(await producer.send(topic_name(topic, target.topic_prefix), value=value, key=key.encode()))
            n += 1
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return n


async def publish_events(settings: Settings, events: Iterable[OutputEvent]) -> int:
    """Publish output events to their topics, keyed by id (every version of an event in one partition)."""
    return await publish(settings, ((type(e).topic, e.id, encode(e)) for e in events))


async def sink_lag(settings: Settings, sink: SinkSettings) -> int:
    """Messages the sink group has not committed yet, over its topics."""
    target = resolve(settings.kafka, settings.core)
    topics = [topic_name(t, target.topic_prefix) for t in sink_topics(sink)]
    lags = await consumer_group_lag(settings.kafka, target.bootstrap, sink.group_id, topics)
    return sum(p.lag for p in lags)


async def wait_caught_up(settings: Settings, sink: SinkSettings, timeout_s: float = 60) -> None:
    """Until the sink committed everything published so far."""
    deadline = time.monotonic() + timeout_s
    while True:
        lag = await sink_lag(settings, sink)
        if lag == 0:
            return
        if time.monotonic() > deadline:
            raise AssertionError(f"sink still {lag} messages behind after {timeout_s}s")
        await asyncio.sleep(0.3)


def fast_sink(**over: Any) -> SinkSettings:
    """Sink settings for tests: small batches, short waits."""
    values: dict[str, Any] = {"batch_max_rows": 500, "batch_max_wait_ms": 200, "retry_backoff_initial_s": 0.05,
                              "retry_backoff_max_s": 0.5}
    values.update(over)
    return SinkSettings(**values)


@contextlib.asynccontextmanager
async def running_sink(settings: Settings, sink: SinkSettings | None = None, **kwargs: Any) -> AsyncIterator[dict[str, Any]]:
    """The sink in this process (sharing the test's chDB path); stopped and drained on exit."""
    sink = sink or fast_sink()
    stop = asyncio.Event()
    ready = asyncio.Event()
    state: dict[str, Any] = {"sink": sink}

    def on_ready(service: SinkService) -> None:
        state["service"] = service
        ready.set()

    task = asyncio.create_task(run_sink(settings, stop, sink, on_ready=on_ready, **kwargs))
    waiter = asyncio.create_task(ready.wait())
    await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    if task.done():
        task.result()  # start-up failed: raise it here
    try:
        yield state
    finally:
        stop.set()
        await task


@contextlib.asynccontextmanager
async def running_notifier(settings: Settings, hooks: list[dict[str, Any]], **kw: Any) -> AsyncIterator[str]:
    """The notifier in-process with these webhooks and fast retries; yields its base URL once healthy."""
    from gateledger import jsonutil
    from gateledger.net import free_port
    from sinks.notifier.main import run_notifier
    from sinks.notifier.settings import NotifierSettings
    from tests.inprocess import serving_in_process

    port = free_port()
    ns = NotifierSettings(group_id=f"notifier-{port}", webhooks=jsonutil.dumps_str(hooks), retry_initial_s=0.05,
                          retry_max_s=0.2, port=port, **kw)
    async with serving_in_process(lambda stop: run_notifier(settings, stop, ns), port, attempts=300) as base:
        yield base
