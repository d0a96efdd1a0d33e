"""Running one of our HTTP services in the test's own event loop, as its ``serve`` command would."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from typing import Any

import aiohttp


@asynccontextmanager
async def serving_in_process(run: Callable[[asyncio.Event], Awaitable[Any]], port: int, *, attempts: int,
                             stop_timeout_s: float | None = None) -> AsyncIterator[str]:
    """Start ``run(stop)`` as a task, yield its base URL once ``/healthz`` answers 200, stop it after.

    A service that exits while starting raises its error here instead of timing out.
    """
    stop = asyncio.Event()
    task = asyncio.create_task(run(stop))
    base = f"http://127.0.0.1:{port}"
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(attempts):
                if task.done():
                    task.result()
                try:
                    async with s.get(f"{base}/healthz") as r:
                        if r.status == 200:
                            break
                except aiohttp.ClientError:
                    await asyncio.sleep(0.05)
        yield base
    finally:
        stop.set()
        await asyncio.wait_for(task, stop_timeout_s)
