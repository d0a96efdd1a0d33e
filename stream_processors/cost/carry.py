"""The cost stage's move from the public call topics to the packed internal one, done once at start.

Until this version the cost stage read ``llm.calls`` + ``mcp.calls`` itself; now it reads the rows
normalize packs for it (``stream_processors/calls.py``). Rows a worker of the earlier version wrote
but its cost stage had not consumed yet would never be priced. So before the worker starts, when
the processors' group has committed on the public call topics but never on the internal one (the
first start of this version), every row after the group's committed offsets is copied, packed, onto
the internal topic. A start that repeats the copy (a crash before the group's first commit there)
only repeats rows the cost stage already saw: it counts a call version once (``cost/stage.py``).
"""

from __future__ import annotations

import logging
from collections import defaultdict

from aiokafka import TopicPartition

from gateledger.kafka import KafkaTarget, consumer_group_lag, ensure_topics, make_consumer, make_producer
from gateledger.settings import KafkaSettings
from gateledger.topics import Topic, TopicSpec, topic_name
from stream_processors.calls import TAGS, pack
from stream_processors.common.partitioning import partition_for

log = logging.getLogger(__name__)


async def carry_calls(kafka: KafkaSettings, target: KafkaTarget, group: str, internal: str, partitions: int) -> int:
    """Copy the call rows the group's cost stage had not consumed onto ``internal``; the rows copied."""
    public = {topic_name(t, target.topic_prefix): TAGS[str(t)] for t in (Topic.LLM_CALLS, Topic.MCP_CALLS)}
    lags = await consumer_group_lag(kafka, target.bootstrap, group, [*public, internal])
    if any(p.committed is not None for p in lags if p.topic == internal):
        return 0  # this version ran here already
    old = [p for p in lags if p.topic in public]
    if not any(p.committed is not None for p in old):
        return 0  # the earlier cost stage never consumed here: nothing of its backlog to carry
    # A partition the earlier stage never committed on is its backlog from the beginning.
    todo = {TopicPartition(p.topic, p.partition): (p.committed or 0, p.highwater) for p in old
            if p.highwater > (p.committed or 0)}
    if not todo:
        return 0
    await ensure_topics(kafka, target.bootstrap, [TopicSpec(internal, partitions, kafka.replication_factor, {})])
    lines: dict[int, list[bytes]] = defaultdict(list)
    consumer = make_consumer(kafka, target, group_id=None)
    await consumer.start()
    try:
        consumer.assign(list(todo))
        for tp, (start, _) in todo.items():
            consumer.seek(tp, start)
        pending = dict(todo)
        idle = 0
        while pending and idle < 5:  # a partition whose last offsets are gone (gaps) ends by silence
            batches = await consumer.getmany(*pending, timeout_ms=1000)
            idle = 0 if batches else idle + 1
            for tp, records in batches.items():
                end = pending[tp][1]
                for rec in records:
                    if rec.offset < end and rec.value is not None and rec.key is not None:
                        lines[partition_for(rec.key, partitions)].append(public[tp.topic] + rec.value)
                if records and records[-1].offset + 1 >= end:
                    pending.pop(tp, None)
    finally:
        await consumer.stop()
    producer = make_producer(kafka, target)
    await producer.start()
    try:
        futures = [await producer.send(internal, value=value, key=b"pack", partition=partition)
                   for partition, rows in sorted(lines.items()) for value in pack(rows)]
        for fut in futures:
            await fut  # acknowledged before the worker (and its cost stage) starts
    finally:
        await producer.stop()
    copied = sum(len(rows) for rows in lines.values())
    log.info("cost: carried %d call rows from the public call topics to %s", copied, internal)
    return copied
