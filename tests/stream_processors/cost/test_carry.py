"""The cost stage's move from the public call topics to the packed internal one: the calls an earlier
version's cost stage had not consumed are carried over and priced, once, by a real worker."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition

from gateledger.contracts.events import LlmCall
from gateledger.kafka import common_config, resolve
from gateledger.money.cost import cost_row_id
from gateledger.settings import Settings
from gateledger.topics import Topic, topic_name
from stream_processors.calls import CALLS, LLM_TAG, unpack
from stream_processors.cost.carry import carry_calls
from stream_processors.pipeline import internal_topic_name
from stream_processors.settings import ProcessorSettings
from tests.conftest import Processes
from tests.stream_processors.harness import ensure_topics, publish, read_messages, start_worker, wait_outputs

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)


def _call(i: int) -> LlmCall:
    return LlmCall(id=f"llm-carry-{i}", version=1, tenant="acme", time=T0 + timedelta(seconds=i), source="obot",
                   provider="openai", model="gpt-4o", input_tokens=1200, output_tokens=300, user_id="bob",
                   request_id=f"req-carry-{i}")


async def _commit(settings: Settings, group: str, offsets: dict[TopicPartition, int]) -> None:
    """Commit offsets for ``group`` as an earlier worker's cost stage would have."""
    target = resolve(settings.kafka, settings.core)
    consumer = AIOKafkaConsumer(**common_config(settings.kafka, target.bootstrap), group_id=group,
                                enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(list(offsets))
        await consumer.commit(offsets)
    finally:
        await consumer.stop()


def test_calls_not_consumed_before_the_upgrade_are_carried_and_priced_once(
        settings: Settings, gl_env: dict[str, str], processes: Processes, tmp_path: Path) -> None:
    target = asyncio.run(ensure_topics(settings))
    group = ProcessorSettings().app_id
    llm_topic = topic_name(Topic.LLM_CALLS, target.topic_prefix)
    internal = internal_topic_name(target.topic_prefix, group, CALLS)
    calls = [_call(i) for i in range(40)]
    asyncio.run(publish(settings, [(Topic.LLM_CALLS, c.id.encode(), c.model_dump_json().encode()) for c in calls]))
    on_topic = asyncio.run(read_messages(settings, [llm_topic]))
    assert len(on_topic) == len(calls)
    # The earlier cost stage consumed the first half of each partition (and committed there).
    by_part: dict[int, list[int]] = {}
    for m in on_topic:
        by_part.setdefault(m.partition, []).append(m.offset)
    committed = {TopicPartition(llm_topic, p): sorted(offs)[len(offs) // 2] for p, offs in by_part.items()}
    asyncio.run(_commit(settings, group, committed))
    backlog = {m.key.decode() for m in on_topic if m.offset >= committed[TopicPartition(llm_topic, m.partition)]}
    assert 0 < len(backlog) < len(calls)

    partitions = settings.kafka.partitions
    copied = asyncio.run(carry_calls(settings.kafka, target, group, internal, partitions))
    assert copied == len(backlog)
    carried = asyncio.run(read_messages(settings, [internal]))
    rows = [(tag, LlmCall.model_validate_json(row)) for m in carried for tag, row in unpack(m.value)]
    assert {r.id for _, r in rows} == backlog and all(tag == LLM_TAG for tag, _ in rows)

    # The worker prices exactly the backlog (the first half was the earlier version's to price), and
    # a row carried twice (a start repeated before the group's first commit on the internal topic)
    # gives one cost row: the second carry is dropped as a duplicate call version.
    assert asyncio.run(carry_calls(settings.kafka, target, group, internal, partitions)) == len(backlog)
    start_worker(processes, gl_env, tmp_path)
    expected = {cost_row_id("llm", i) for i in backlog}
    out = asyncio.run(wait_outputs(settings, lambda o: expected <= set(o.final(Topic.COST_LEDGER))))
    assert set(out.final(Topic.COST_LEDGER)) == expected
    assert len(out.all(Topic.COST_LEDGER)) == len(expected)
    # The worker carried on its own start as well (the group had still not committed on the internal topic).
    carried = asyncio.run(read_messages(settings, [internal]))
    assert sum(1 for m in carried for _ in unpack(m.value)) == 3 * len(backlog)
