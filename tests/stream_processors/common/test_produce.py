"""Batched produce lands every message where aiokafka's per-message ``send`` would, in the same order.

Against the real broker: the same keyed messages go once through ``producer.send`` (aiokafka's
default partitioner, the reference) and once through ``PartitionBatches``; both topics must hold
the same keys and values per partition in the same order. The batches are made small so several
fill up, one message is larger than a whole batch, and explicit partitions carry tombstones.
"""

from __future__ import annotations

import asyncio

from aiokafka import TopicPartition

from gateledger.kafka import KafkaTarget, ensure_topics, make_consumer, make_producer, resolve
from gateledger.settings import Settings
from gateledger.topics import TopicSpec
from stream_processors.common.produce import PartitionBatches

PARTS = 4


async def _read(settings: Settings, target: KafkaTarget, topic: str, expected: int) -> dict[int, list[tuple]]:
    consumer = make_consumer(settings.kafka, target, group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(topic, p) for p in range(PARTS)]
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        got: dict[int, list[tuple]] = {p: [] for p in range(PARTS)}
        seen = 0
        async with asyncio.timeout(60):
            while seen < expected:
                for tp, records in (await consumer.getmany(timeout_ms=500)).items():
                    got[tp.partition].extend((r.key, r.value) for r in records)
                    seen += len(records)
        return got
    finally:
        await consumer.stop()


async def _scenario(settings: Settings) -> None:
    target = resolve(settings.kafka, settings.core)
    ref, batched = f"{target.topic_prefix}ref", f"{target.topic_prefix}batched"
    await ensure_topics(settings.kafka, target.bootstrap,
                        [TopicSpec(t, PARTS, settings.kafka.replication_factor, {}) for t in (ref, batched)])
    keyed = [(f"id-{i}".encode(), f"value-{i}-".encode() * (1 + i % 7)) for i in range(300)]
    keyed.insert(150, (b"id-huge", b"x" * 5000))  # larger than a whole batch: goes alone
    explicit = [(b"k-a", b"1"), (b"k-b", None), (b"k-a", None), (b"k-c", b"3")]  # tombstones kept
    producer = make_producer(settings.kafka, target, max_batch_size=2048, linger_ms=0)
    await producer.start()
    try:
        futures = [await producer.send(ref, value=v, key=k) for k, v in keyed]
        futures += [await producer.send(ref, value=v, key=k, partition=2) for k, v in explicit]
        await asyncio.gather(*futures)
        batches = PartitionBatches(producer)
        for k, v in keyed:
            batches.add(batched, k, v)
        for k, v in explicit:
            batches.add(batched, k, v, 2)
        assert len(batches) == len(keyed) + len(explicit)
        sent = await batches.send()
        assert len(sent) > PARTS + 1  # the small batches really filled up and were split
        await asyncio.gather(*sent)
    finally:
        await producer.stop()
    total = len(keyed) + len(explicit)
    want, got = await _read(settings, target, ref, total), await _read(settings, target, batched, total)
    assert got == want
    assert all(want[p] for p in range(PARTS))  # the keys really spread over every partition
    assert want[2][-len(explicit):] == explicit


def test_batched_produce_matches_per_message_send(settings: Settings) -> None:
    asyncio.run(_scenario(settings))
