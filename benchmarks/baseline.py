"""The physical limit on this machine: raw aiokafka produce -> consume -> batched chDB insert, no processing.

The same events the pipeline carries (realistic raw envelopes of every upstream system) are produced
with acks=all to one topic, consumed by one consumer and inserted in batches of up to 10,000 as
opaque JSON strings (``JSONAsString``: ClickHouse parses nothing, Python looks at nothing). The
producer and the consumer run at the same time, as in the pipeline. Every other figure of
``gateledger bench`` is divided by these.
"""

from __future__ import annotations

import asyncio
import os
import shutil
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import median, pct, rss_kib

BATCH = 10_000


def _messages(n: int) -> list[tuple[bytes, bytes]]:
    from benchmarks.processors import raw_messages

    out: list[tuple[bytes, bytes]] = []
    seed = 1
    while len(out) < n:
        out.extend((k, v) for _, k, v in raw_messages(max(1000, (n - len(out)) // 4), seed))
        seed += 1
    return out[:n]


async def _one_run(bootstrap: str, client: Any, topic: str, msgs: list[tuple[bytes, bytes]],
                   rate: float | None, partitions: int) -> dict[str, Any]:
    from gateledger.kafka import KafkaTarget, ensure_topics, make_consumer, make_producer
    from gateledger.settings import KafkaSettings
    from gateledger.topics import TopicSpec

    kafka = KafkaSettings(bootstrap_servers=bootstrap, tansu_workarounds="true", session_timeout_ms=3000,
                          heartbeat_interval_ms=500)
    await ensure_topics(kafka, bootstrap, [TopicSpec(topic, partitions, 1, {})])
    target = KafkaTarget(bootstrap, True, "")
    client.command(f"CREATE TABLE IF NOT EXISTS `{topic}` (payload String, inserted_at DateTime64(3, 'UTC') "
                   "DEFAULT now64(3)) ENGINE = MergeTree ORDER BY tuple()")
    producer = make_producer(kafka, target)
    # Assigned, not subscribed: Tansu's slow group join would otherwise be timed too.
    consumer = make_consumer(kafka, target, group_id=f"{topic}-g", max_poll_records=BATCH)
    await producer.start()
    await consumer.start()
    from aiokafka import TopicPartition

    consumer.assign([TopicPartition(topic, p) for p in range(partitions)])
    n = len(msgs)
    delays: list[float] = []
    got = 0
    t_first = time.time()

    async def produce() -> None:
        futures = []
        start = time.monotonic()
        for i, (k, v) in enumerate(msgs):
            if rate:
                ahead = start + i / rate - time.monotonic()
                if ahead > 0:
                    await asyncio.sleep(ahead)
            futures.append(await producer.send(topic, value=v, key=k))
        await asyncio.gather(*futures)

    async def consume() -> None:
        nonlocal got
        while got < n:
            batch = await consumer.getmany(timeout_ms=100, max_records=BATCH)
            records = [m for ms in batch.values() for m in ms]
            if not records:
                continue
            client.raw_insert(topic, ["payload"], b"\n".join(m.value for m in records), fmt="JSONAsString",
                              settings={"async_insert": 0})
            await consumer.commit()
            done = time.time()
            delays.extend(done - m.timestamp / 1000 for m in records)
            got += len(records)

    try:
        t_first = time.time()
        await asyncio.wait_for(asyncio.gather(produce(), consume()), timeout=600)
        elapsed = time.time() - t_first
    finally:
        await consumer.stop()
        await producer.stop()
    (landed,), = client.query(f"SELECT count() FROM `{topic}`").result_rows
    if landed != n:
        raise AssertionError(f"baseline landed {landed} of {n}")
    ms = [d * 1000 for d in delays]
    return {"events": n, "seconds": round(elapsed, 3), "events_per_s": round(n / elapsed),
            "delay_ms": {"p50": round(pct(ms, 50), 1), "p95": round(pct(ms, 95), 1), "p99": round(pct(ms, 99), 1)}}


def run(events: int = 200_000, runs: int = 3, paced_fraction: float = 0.5, paced_seconds: float = 10.0) -> dict[str, Any]:
    """Events/s (median of ``runs``), then the produce -> queryable delay at ``paced_fraction`` of it."""
    from gateledger.clickhouse.client import connect
    from gateledger.settings import ClickHouseSettings, CoreSettings, KafkaSettings
    from gateledger.stack.broker import TansuBroker

    partitions = KafkaSettings().partitions
    tmp = Path(tempfile.mkdtemp(prefix="gl-bench-base-"))
    broker = TansuBroker(log_path=tmp / "broker.log")
    broker.start()
    client = connect(ClickHouseSettings(url=f"chdb://{tmp / 'ch'}", database="default"), CoreSettings(data_dir=tmp))
    try:
        msgs = _messages(events)
        avg_bytes = sum(len(v) for _, v in msgs) / len(msgs)
        blasts = [asyncio.run(_one_run(broker.bootstrap, client, f"base{r}x{os.getpid()}", msgs, None, partitions))
                  for r in range(runs)]
        eps = median([b["events_per_s"] for b in blasts])
        rate = eps * paced_fraction
        paced_n = max(1000, int(rate * paced_seconds))
        paced = asyncio.run(_one_run(broker.bootstrap, client, f"basepaced{os.getpid()}", msgs[:paced_n], rate,
                                     partitions))
        return {
            "scenario": "baseline",
            "what": "aiokafka produce (acks=all) -> one consumer -> chDB insert JSONAsString, batches <= 10k",
            "events": events, "avg_event_bytes": round(avg_bytes), "partitions": partitions, "runs": runs,
            "events_per_s": round(eps), "events_per_s_runs": [b["events_per_s"] for b in blasts],
            "paced_rate": round(rate), "delay_ms": paced["delay_ms"],
            "peak_rss_mib": round(rss_kib(os.getpid(), "VmHWM") / 1024, 1),
        }
    finally:
        client.close()
        broker.stop()
        shutil.rmtree(tmp, ignore_errors=True)
