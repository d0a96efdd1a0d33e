"""``gateledger simulate``: drive an ingest service in real time, or write files."""

from __future__ import annotations

import asyncio
import sys
import time
from datetime import datetime
from pathlib import Path

import aiohttp

from gateledger import jsonutil
from gateledger.clock import utcnow
from producers.simulator.deliver import Deliverer
from producers.simulator.files import write_files
from producers.simulator.traffic import Delivery, Faults, TrafficGenerator

TICK_S = 0.2


async def run_simulation(
    target: str | None,
    *,
    rate: float,
    seed: int,
    count: int | None,
    tenants: int,
    start: datetime | None = None,
    faults: Faults | None = None,
    out: Path | None = None,
    truth_path: Path | None = None,
    tokens: dict[str, str] | None = None,
    token: str | None = None,
    webhook_secret: str | None = None,
) -> int:
    """Run until ``count`` interactions were delivered (or forever in target mode); returns an exit code."""
    gen = TrafficGenerator(seed, start or utcnow(), tenants=tenants, rate=rate or 50.0, faults=faults)
    if out is not None:
        if count is None:
            raise ValueError("--out needs --count")
        deliveries: list[Delivery] = []
        for _ in range(count):
            deliveries.extend(gen.next())
        deliveries.extend(gen.drain())
        counts = write_files(out, deliveries, gen.truth)
        print(f"wrote {sum(counts.values())} records in {len(counts)} files under {out}", file=sys.stderr)
        print(jsonutil.dumps_str(gen.truth.summary()))
        return 0
    assert target is not None
    timeout = aiohttp.ClientTimeout(total=60)
    async with aiohttp.ClientSession(timeout=timeout) as session:
        deliverer = Deliverer(session, target, tokens=tokens, token=token, webhook_secret=webhook_secret)
        started = time.monotonic()
        while count is None or gen.count < count:
            due = int((time.monotonic() - started) * rate) + 1 if rate > 0 else gen.count + 100
            if count is not None:
                due = min(due, count)
            if due <= gen.count:
                await asyncio.sleep(TICK_S)
                continue
            batch: list[Delivery] = []
            while gen.count < due:
                batch.extend(gen.next())
            await deliverer.send(batch)
        await deliverer.send(gen.drain())
    if truth_path is not None:
        truth_path.write_bytes(gen.truth.to_json())
    stats = deliverer.stats
    print(f"sent {gen.count} interactions: {stats.records} records in {stats.requests} requests, "
          f"statuses {dict(sorted(stats.statuses.items()))}, {stats.retries} retries", file=sys.stderr)
    return 0
