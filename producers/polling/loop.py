"""The poll loop both audit pollers run: a cycle every interval, exponential backoff with full jitter after failures."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable


class PollLoop:
    """Runs ``cycle`` until ``stop``; the cycle returns False when it failed (the loop backs off)."""

    def __init__(self, interval_s: float, backoff_min_s: float, backoff_max_s: float,
                 rng: random.Random | None = None) -> None:
        self.interval_s = interval_s
        self.backoff_min_s = backoff_min_s
        self.backoff_max_s = backoff_max_s
        self.rng = rng or random.Random()

    def backoff(self, failures: int) -> float:
        """Exponential backoff with full jitter, between the configured bounds."""
        cap = min(self.backoff_max_s, self.backoff_min_s * 2 ** (failures - 1))
        return max(self.backoff_min_s, self.rng.uniform(0, cap))

    async def run(self, stop: asyncio.Event, cycle: Callable[[], Awaitable[bool]]) -> None:
        """Cycle every ``interval_s`` until ``stop`` is set; after n failures in a row wait ``backoff(n)``."""
        failures = 0
        while not stop.is_set():
            failures = 0 if await cycle() else failures + 1
            delay = self.interval_s if not failures else self.backoff(failures)
            try:
                await asyncio.wait_for(stop.wait(), delay)
            except TimeoutError:
                pass
