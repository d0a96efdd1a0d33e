"""The poll loop both audit pollers run: a cycle every interval, gateledger's backoff (jittered) after failures."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Awaitable, Callable

from gateledger.retry import Backoff


class PollLoop:
    """Runs ``cycle`` until ``stop``; the cycle returns False when it failed (the loop backs off)."""

    def __init__(self, interval_s: float, backoff_min_s: float, backoff_max_s: float,
                 rng: random.Random | None = None) -> None:
        self.interval_s = interval_s
        self.policy = Backoff(backoff_min_s, backoff_max_s, jitter=True)
        self.rng = rng or random.Random()

    def backoff(self, failures: int) -> float:
        """The wait after ``failures`` failed cycles in a row (``gateledger/retry.py``), within the bounds."""
        return self.policy.delay(failures, rng=self.rng)

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
