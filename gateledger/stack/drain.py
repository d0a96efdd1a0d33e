"""Graceful stop: wait until what the stack accepted has gone through it, in pipeline order.

1. the ingest answers 503 + ``Retry-After`` to new records (SIGUSR1; it keeps listening, so
   clients retry instead of seeing a refused connection);
2. the processors' consumer group has committed up to the raw topics' high watermarks (true
   high watermarks from a fetch: ``end_offsets()`` is wrong on Tansu);
3. the sink's group has committed up to the high watermark of every topic it lands, and no topic
   grew over two polls (the processors' outputs of step 2 have been produced and landed);
then the caller stops the services and the broker. Work still open inside the processors
(interactions waiting to settle) is not flushed: it is rebuilt by the re-drive at the next start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from aiokafka import TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from gateledger.kafka import common_config, consumer_group_lag, true_highwaters
from gateledger.settings import KafkaSettings

Groups = dict[str, list[str]]  # consumer group -> topics it must catch up on


async def _all_highwaters(kafka: KafkaSettings, bootstrap: str, prefix: str) -> int:
    admin = AIOKafkaAdminClient(**common_config(kafka, bootstrap))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix) and not t.startswith("__")]
        meta = await admin.describe_topics(names)
    finally:
        await admin.close()
    tps = [TopicPartition(t["topic"], p["partition"]) for t in meta for p in t["partitions"]]
    return sum((await true_highwaters(kafka, bootstrap, tps)).values())


async def drain(kafka: KafkaSettings, bootstrap: str, prefix: str, processors: Groups, sink: Groups,
                progress: Callable[[str], None], timeout_s: float, poll_s: float = 1.0) -> bool:
    """Wait until the processors, then the sink, caught up; False when ``timeout_s`` ran out first."""
    deadline = time.monotonic() + timeout_s
    for label, groups in (("processors", processors), ("sink", sink)):
        last = last_lag = -1
        while True:
            lag = 0
            for group, topics in groups.items():
                lag += sum(p.lag for p in await consumer_group_lag(kafka, bootstrap, group, topics))
            if label == "sink":
                total = await _all_highwaters(kafka, bootstrap, prefix)
                settled, last = total == last, total
            else:
                settled = True
            if lag <= 0 and settled:
                progress(f"  drain: {label} caught up")
                break
            if lag != last_lag:
                progress(f"  drain: {label} {max(lag, 0):,} message(s) behind")
                last_lag = lag
            if time.monotonic() >= deadline:
                progress(f"  drain: {label} still {lag:,} message(s) behind after {timeout_s:.0f}s; "
                         "stopping anyway (the next start re-drives it)")
                return False
            await asyncio.sleep(poll_s)
    return True
