"""CPU per message of the processors' produce path: aiokafka's per-message ``send`` (how the stages
produced before) against ``PartitionBatches`` (one record batch per topic-partition and flush).

The same messages (6 topics × 4 partitions, ~400-byte values, flushes of 2,000 messages whose
acknowledgements are awaited, as ``StageRunner`` does) go through both paths on one broker,
alternated; the figure is the process's CPU time per message (``time.process_time``), which a
shared machine disturbs much less than wall time. ``python -m benchmarks.produce [none|lz4|…]``.
"""

from __future__ import annotations

import asyncio
import json
import os
import statistics
import time
from typing import Any

N, FLUSH, TOPICS, PARTITIONS = 40_000, 2_000, 6, 4


async def _run(bootstrap: str, rounds: int, compression: str | None) -> dict[str, Any]:
    from gateledger.kafka import KafkaTarget, ensure_topics, make_producer
    from gateledger.settings import KafkaSettings
    from gateledger.topics import TopicSpec
    from stream_processors.common.produce import PartitionBatches

    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    topics = [f"bench-produce-{os.getpid()}-{i}" for i in range(TOPICS)]
    await ensure_topics(kafka, bootstrap, [TopicSpec(t, PARTITIONS, 1, {}) for t in topics])
    extra = {} if compression is None else {"compression_type": None if compression == "none" else compression}
    producer = make_producer(kafka, KafkaTarget(bootstrap, True, ""), **extra)
    await producer.start()
    msgs = [(topics[i % TOPICS], f"id-{i}".encode(), b'{"x":"' + b"v" * 400 + b'"}') for i in range(N)]
    us: dict[str, list[float]] = {"send": [], "batches": []}
    try:
        for _ in range(rounds):
            for mode in us:
                cpu0 = time.process_time()
                for i in range(0, N, FLUSH):
                    if mode == "send":
                        futures = [await producer.send(t, v, k) for t, k, v in msgs[i:i + FLUSH]]
                    else:
                        batches = PartitionBatches(producer)
                        for t, k, v in msgs[i:i + FLUSH]:
                            batches.add(t, k, v)
                        futures = await batches.send()
                    await asyncio.gather(*futures)
                us[mode].append(round(1e6 * (time.process_time() - cpu0) / N, 1))
    finally:
        await producer.stop()
    return {"benchmark": "processors.produce", "compression": compression or kafka.compression_type, "messages": N, "flush": FLUSH, "rounds": rounds,
            "cpu_us_per_message_runs": us,
            "cpu_us_per_message_median": {k: statistics.median(v) for k, v in us.items()}}


def run(rounds: int = 3, compression: str | None = None) -> dict[str, Any]:
    """Both paths on an embedded Tansu broker (``compression``: override the setting, e.g. "none")."""
    from gateledger.stack.broker import TansuBroker

    broker = TansuBroker()
    broker.start()
    try:
        return asyncio.run(_run(broker.bootstrap, rounds, compression))
    finally:
        broker.stop()


if __name__ == "__main__":
    import sys

    print(json.dumps(run(compression=sys.argv[1] if len(sys.argv) > 1 else None)))
