"""The processors' changelogs carried across a broker recycle (gateledger/stack/changelogs.py), on two
real Tansu brokers: the newest value per key survives, deleted keys stay deleted, order is kept,
and nothing but changelogs is carried."""

from __future__ import annotations

import asyncio
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from gateledger.kafka import KafkaTarget, common_config, ensure_topics, make_producer, true_highwaters
from gateledger.settings import Settings
from gateledger.stack import changelogs
from gateledger.stack.broker import TansuBroker
from gateledger.topics import TopicSpec


async def _produce(settings: Settings, bootstrap: str, records: list[tuple[str, int, bytes, bytes | None]]) -> None:
    producer = make_producer(settings.kafka, KafkaTarget(bootstrap, True, settings.core.topic_prefix))
    await producer.start()
    try:
        for topic, partition, key, value in records:
            await (await producer.send(topic, value, key=key, partition=partition))
    finally:
        await producer.stop()


async def _read(settings: Settings, bootstrap: str, topic: str, partitions: int) -> dict[int, list[tuple]]:
    tps = [TopicPartition(topic, p) for p in range(partitions)]
    high = await true_highwaters(settings.kafka, bootstrap, tps)
    out: dict[int, list[tuple]] = {p: [] for p in range(partitions)}
    todo = {tp for tp in tps if high[tp] > 0}
    if not todo:
        return out
    consumer = AIOKafkaConsumer(**common_config(settings.kafka, bootstrap), group_id=None,
                                enable_auto_commit=False, auto_offset_reset="earliest")
    await consumer.start()
    try:
        consumer.assign(tps)
        while todo:
            for tp, msgs in (await consumer.getmany(*todo, timeout_ms=500)).items():
                out[tp.partition] += [(m.key, m.value) for m in msgs]
                if msgs and msgs[-1].offset + 1 >= high[tp]:
                    todo.discard(tp)
    finally:
        await consumer.stop()
    return out


def test_state_carried_to_a_new_broker_compacted_in_order(settings: Settings, broker: TansuBroker,
                                                           tmp_path: Path) -> None:
    prefix = settings.core.topic_prefix
    a, b, raw = f"{prefix}app-norm-changelog", f"{prefix}app-corr-changelog", f"{prefix}raw.things"
    lines = [TopicSpec(a, 2, 1, {"cleanup.policy": "compact"}), TopicSpec(b, 1, 1, {"cleanup.policy": "compact"}),
             TopicSpec(raw, 1, 1, {})]
    asyncio.run(ensure_topics(settings.kafka, broker.bootstrap, lines))
    asyncio.run(_produce(settings, broker.bootstrap, [
        (a, 0, b"k1", b"v1"), (a, 0, b"k2", b"v1"), (a, 0, b"k1", b"v2"), (a, 0, b"k2", None),
        (a, 0, b"k3", b"v1"), (a, 1, b"k1", b"w1"), (b, 0, b"x", b"1"), (b, 0, b"x", None), (raw, 0, b"r", b"r"),
    ]))
    said: list[str] = []
    path = asyncio.run(changelogs.saved(settings.kafka, broker.bootstrap, prefix, tmp_path, said.append))
    assert path is not None and path.exists()
    assert "3 entr(ies) of 8 changelog record(s) in 2 table(s)" in said[-1], said

    fresh = TansuBroker(log_path=tmp_path / "fresh.log")
    fresh.start()
    try:
        target = KafkaTarget(fresh.bootstrap, True, prefix)
        asyncio.run(changelogs.restored(settings.kafka, target, path, said.append))
        assert "restored, 3 entr(ies)" in said[-1], said
        assert not path.exists(), "the scratch file is removed once written back"
        # The newest value per key, deleted keys gone, in the order of their last writes.
        assert asyncio.run(_read(settings, fresh.bootstrap, a, 2)) == {0: [(b"k1", b"v2"), (b"k3", b"v1")],
                                                                      1: [(b"k1", b"w1")]}
        # A table whose every key was deleted comes back as an empty changelog; raw topics are not carried.
        assert asyncio.run(_read(settings, fresh.bootstrap, b, 1)) == {0: []}
        assert raw not in asyncio.run(changelogs.changelog_partitions(settings.kafka, fresh.bootstrap, prefix))
    finally:
        fresh.stop()


def test_a_failed_save_carries_nothing(settings: Settings, tmp_path: Path) -> None:
    said: list[str] = []
    # Nothing listens there: the save fails, says so, and the processors would restart empty.
    path = asyncio.run(changelogs.saved(settings.kafka, "127.0.0.1:1", settings.core.topic_prefix, tmp_path,
                                        said.append))
    assert path is None and not (tmp_path / changelogs.FILE).exists()
    assert "processor state not saved" in said[-1], said
