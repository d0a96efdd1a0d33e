"""Driving an ingest service with simulated traffic at a steady rate."""

from __future__ import annotations

import asyncio
import random
import time

import aiohttp

from gateledger import jsonutil
from gateledger.clock import utcnow
from producers.simulator.traffic import Batch, TrafficGenerator
from producers.simulator.world import build_world

TICK_S = 0.2


async def _post(session: aiohttp.ClientSession, url: str, records: list[dict]) -> None:
    """POST with retries: 503 means the broker is unavailable and nothing was accepted."""
    body = jsonutil.dumps(records)
    delay = 0.2
    while True:
        try:
            async with session.post(url, data=body, headers={"Content-Type": "application/json"}) as resp:
                if resp.status < 500:
                    return
        except (aiohttp.ClientError, OSError):
            pass
        await asyncio.sleep(delay)
        delay = min(delay * 2, 5.0)


async def run_simulation(target: str, *, rate: float, seed: int, count: int | None, tenants: int) -> int:
    """Send interactions until ``count`` is reached (or forever)."""
    world = build_world(random.Random(seed), tenants)
    gen = TrafficGenerator(world, seed)
    sent = 0
    base = target.rstrip("/")
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60)) as session:
        started = time.monotonic()
        while count is None or sent < count:
            due = int((time.monotonic() - started) * rate) + 1 if rate > 0 else sent + 100
            n = min(due - sent, (count - sent) if count is not None else due)
            if n <= 0:
                await asyncio.sleep(TICK_S)
                continue
            batch = Batch()
            now = utcnow()
            for _ in range(n):
                gen.interaction(now, batch)
            await asyncio.gather(
                *(_post(session, f"{base}/v1/ingest/{fmt}", recs) for fmt, recs in batch.records.items())
            )
            sent += n
    return 0
