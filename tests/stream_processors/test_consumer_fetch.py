"""The consumer thread fetches only partitions faust has active (real broker, real aiokafka consumer).

faust passes its live set of active partitions to the fetch and drops whatever comes back for a
partition outside it, after the consumer's position has moved past those records. These tests run
the fetch step of faust's consumer thread (``_fetch_records``) against a real consumer: faust's own
class hands over records of paused partitions (that is the loss), ours does not.
"""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from aiokafka import TopicPartition
from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread
from faust.types import TP

from gateledger.kafka import ensure_topics, make_consumer, resolve
from gateledger.settings import Settings
from gateledger.topics import TopicSpec
from stream_processors.consumer_thread import ActiveOnlyConsumerThread
from tests.stream_processors.harness import publish


def _thread(cls: type[AIOKafkaConsumerThread]) -> Any:
    """The fetch step of a consumer thread, without the thread (it needs only ``consumer.flow_active``)."""
    thread = cls.__new__(cls)
    thread.consumer = SimpleNamespace(flow_active=True)
    return thread


async def _fetch_across_a_pause(settings: Settings, cls: type[AIOKafkaConsumerThread], paused: str,
                                active: str) -> tuple[dict[Any, Any], int]:
    """Fetch with only ``active`` active; while the fetch waits, faust pauses that one too (the set
    empties, as at the end of table recovery) and records arrive on ``paused``.

    Returns what the fetch handed over and the consumer's position on ``paused`` afterwards.
    """
    target = resolve(settings.kafka, settings.core)
    consumer = make_consumer(settings.kafka, target, group_id=None)
    await consumer.start()
    try:
        tps = TopicPartition(target.topic_prefix + paused, 0), TopicPartition(target.topic_prefix + active, 0)
        consumer.assign(list(tps))
        await consumer.seek_to_beginning(*tps)
        live = {TP(tps[1].topic, 0)}

        async def pause_then_publish() -> None:
            await asyncio.sleep(0.3)
            live.clear()
            await publish(settings, [(paused, f"k{i}".encode(), b"v") for i in range(20)])

        publishing = asyncio.create_task(pause_then_publish())
        records = await _thread(cls)._fetch_records(consumer, live, timeout=3.0, max_records=500)
        await publishing
        return {tp.topic.removeprefix(target.topic_prefix): len(r) for tp, r in records.items()}, \
            await consumer.position(tps[0])
    finally:
        await consumer.stop()


@pytest.mark.parametrize("cls, leaks", [(AIOKafkaConsumerThread, True), (ActiveOnlyConsumerThread, False)],
                         ids=["faust", "gateledger"])
def test_a_fetch_never_hands_over_records_of_partitions_faust_has_paused(
        settings: Settings, cls: type[AIOKafkaConsumerThread], leaks: bool) -> None:
    target = resolve(settings.kafka, settings.core)
    asyncio.run(ensure_topics(settings.kafka, target.bootstrap, [
        TopicSpec(target.topic_prefix + name, 1, 1, {}) for name in ("fetch.paused", "fetch.active")]))

    handed_over, position = asyncio.run(_fetch_across_a_pause(settings, cls, "fetch.paused", "fetch.active"))

    if leaks:  # faust's thread: the paused partition's records come back, its position moved past them
        assert handed_over == {"fetch.paused": 20} and position == 20
    else:
        assert handed_over == {} and position == 0


def test_an_empty_active_set_fetches_nothing(settings: Settings) -> None:
    target = resolve(settings.kafka, settings.core)
    topic = target.topic_prefix + "fetch.idle"
    asyncio.run(ensure_topics(settings.kafka, target.bootstrap, [TopicSpec(topic, 1, 1, {})]))
    asyncio.run(publish(settings, [("fetch.idle", b"k", b"v")] * 5))

    async def fetch() -> tuple[dict[Any, Any], int]:
        consumer = make_consumer(settings.kafka, target, group_id=None)
        await consumer.start()
        try:
            tp = TopicPartition(topic, 0)
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            await asyncio.sleep(1.0)  # the fetcher buffers the records meanwhile
            records = await _thread(ActiveOnlyConsumerThread)._fetch_records(consumer, set(), timeout=1.0)
            return records, await consumer.position(tp)
        finally:
            await consumer.stop()

    records, position = asyncio.run(fetch())
    assert records == {} and position == 0
