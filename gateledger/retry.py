"""The one backoff policy: how long to wait before the next attempt after failures in a row.

Every retry in gateledger waits by it: the ClickHouse sink's and the notifier's tenacity loops take a
``Backoff`` as their ``wait=`` (it is a tenacity wait strategy); the emitters, the simulator's deliveries,
the audit pollers and the stack supervisor's restarts ask ``delay``. The wait doubles from ``initial_s`` up
to ``max_s``; with ``jitter`` (clients, many of which may retry at once) it is drawn between ``initial_s``
and that, as tenacity's ``wait_random_exponential(multiplier=initial_s, min=initial_s, max=max_s)`` draws
it. A receiver's Retry-After (seconds) wins over the doubling, capped at ``max_s``: it knows when it will
be ready. Standard library only, so the blocking emitter stays so.
"""

from __future__ import annotations

import random
from dataclasses import dataclass
from typing import Protocol

_MAX_DOUBLINGS = 64  # beyond this every wait is max_s anyway; keeps 2**n a small int


class _Attempts(Protocol):
    attempt_number: int


@dataclass(frozen=True)
class Backoff:
    """Waits between attempts: ``initial_s`` doubling up to ``max_s``, optionally jittered."""

    initial_s: float
    max_s: float
    jitter: bool = False

    def delay(self, failures: int, retry_after: float | str | None = None,
              rng: random.Random | None = None) -> float:
        """Seconds to wait after ``failures`` (1 or more) failed attempts in a row."""
        if retry_after is not None:
            try:
                after = float(retry_after)
            except ValueError:
                after = -1.0  # an HTTP date or junk: the doubling decides
            if after >= 0:
                return min(after, self.max_s)
        wait = min(self.max_s, self.initial_s * 2 ** min(max(failures, 1) - 1, _MAX_DOUBLINGS))
        if self.jitter:
            wait = (rng or random).uniform(min(self.initial_s, wait), wait)
        return wait

    def __call__(self, retry_state: _Attempts) -> float:
        """tenacity's ``wait=``: the delay after the attempts ``retry_state`` counts."""
        return self.delay(retry_state.attempt_number)
