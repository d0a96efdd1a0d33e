"""Reading back what the producers published, from the real broker (test helper)."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from gateledger import jsonutil
from gateledger.kafka import common_config
from gateledger.settings import Settings
from gateledger.topics import Topic, topic_name


async def read_topic(settings: Settings, topic: Topic, want: int | None = None, timeout_s: float = 10.0,
                     bootstrap: str | None = None,
                     until: Callable[[list[dict[str, Any]]], bool] | None = None) -> list[dict[str, Any]]:
    """Every message on a topic (value parsed, plus ``_key``), reading until ``want`` arrived (or ``until``
    holds) or it goes quiet."""
    name = topic_name(topic, settings.core.topic_prefix)
    consumer = AIOKafkaConsumer(
        **common_config(settings.kafka, bootstrap or settings.kafka.bootstrap_servers or ""),
        enable_auto_commit=False,
        group_id=None,
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        parts = consumer.partitions_for_topic(name)
        if parts is None:
            await consumer._client.force_metadata_update()  # noqa: SLF001
            parts = consumer.partitions_for_topic(name) or set()
        tps = [TopicPartition(name, p) for p in sorted(parts)]
        if not tps:
            return []
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        out: list[dict[str, Any]] = []
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        quiet_since = loop.time()
        while loop.time() < deadline:
            batch = await consumer.getmany(timeout_ms=200)
            got = [m for msgs in batch.values() for m in msgs]
            for m in got:
                value = jsonutil.loads(m.value)
                value["_key"] = m.key.decode() if m.key else None
                out.append(value)
            if got:
                quiet_since = loop.time()
            if (until is not None and until(out)) or (until is None and want is not None and len(out) >= want):
                # A little longer, so that extra (unexpected) messages are seen too.
                if loop.time() - quiet_since > 0.5:
                    break
            elif want is None and until is None and loop.time() - quiet_since > 1.0:
                break
        return out
    finally:
        await consumer.stop()
