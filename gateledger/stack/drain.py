"""Graceful stop: wait until what the stack accepted has gone through it, in pipeline order.

1. the ingest answers 503 + ``Retry-After`` to new records (SIGUSR1; it keeps listening, so
   clients retry instead of seeing a refused connection);
2. the processors' consumer group has committed up to the raw topics' high watermarks (true
   high watermarks from a fetch: ``end_offsets()`` is wrong on Tansu), then up to those of the
   topics its later stages consume (facts, calls, cost rows, budget contributions);
3. the sink's group has committed up to the high watermark of every topic it lands, and none of
   them grew over two polls (the processors' outputs of step 2 have been produced and landed);
then the caller stops the services and the broker. Work still open inside the processors
(interactions waiting to settle) is not flushed: it is rebuilt by the re-drive at the next start.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

from gateledger.kafka import consumer_group_lag
from gateledger.settings import KafkaSettings

Groups = dict[str, list[str]]  # consumer group -> topics it must catch up on


async def drain(kafka: KafkaSettings, bootstrap: str, processors: Groups, sink: Groups,
                progress: Callable[[str], None], timeout_s: float, poll_s: float = 1.0,
                stages: Groups | None = None) -> bool:
    """Wait until the processors, then the sink, caught up; False when ``timeout_s`` (> 0) ran out first.

    ``stages``: the topics the processors' later stages consume (facts, calls, cost rows, budget
    contributions); a partition of them counts once the group committed on it (a stage without
    budgets never consumes some of them).
    """
    deadline = time.monotonic() + timeout_s if timeout_s > 0 else float("inf")
    for label, groups in (("processors", processors), ("stages", stages or {}), ("sink", sink)):
        last = last_lag = -1
        while True:
            lag = total = 0
            for group, topics in groups.items():
                parts = await consumer_group_lag(kafka, bootstrap, group, topics)
                lag += sum(p.lag for p in parts if label != "stages" or p.committed is not None)
                total += sum(p.highwater for p in parts)
            if label == "sink":  # the processors' outputs stopped growing (their changelogs never do)
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
