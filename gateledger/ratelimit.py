"""Per-caller rate and concurrency limits (token buckets and in-flight counts), for every HTTP door:
the ingest routes and the tap (producers/ingest/limits.py), the notifier's ``/alertmanager``."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass
class _Bucket:
    tokens: float
    stamp: float
    inflight: int = 0


class Limiter:
    """Token buckets and in-flight counts per caller key (pure logic; the clock is injectable)."""

    def __init__(self, rate_per_s: float, burst: int, max_concurrent: int,
                 clock: Callable[[], float] = time.monotonic, max_keys: int = 10_000) -> None:
        self.rate = rate_per_s
        self.burst = max(burst, 1)
        self.max_concurrent = max_concurrent
        self.clock = clock
        self.max_keys = max_keys
        self._buckets: dict[Any, _Bucket] = {}

    def acquire(self, key: Any, rate_per_s: float | None = None,
                burst: int | None = None) -> tuple[str, float] | None:
        """None when the request may go ahead (release it later), else (reason, seconds to wait).

        ``rate_per_s`` / ``burst``: this caller's own rate limit instead of the limiter's."""
        rate = self.rate if rate_per_s is None else rate_per_s
        depth = float(self.burst if burst is None else max(burst, 1))
        now = self.clock()
        b = self._buckets.get(key)
        if b is None:
            self._prune()
            b = self._buckets[key] = _Bucket(depth, now)
        if rate > 0:
            b.tokens = min(depth, b.tokens + (now - b.stamp) * rate)
        b.stamp = now
        if self.max_concurrent > 0 and b.inflight >= self.max_concurrent:
            return "concurrency_limited", 1.0
        if rate > 0:
            if b.tokens < 1.0:
                return "rate_limited", (1.0 - b.tokens) / rate
            b.tokens -= 1.0
        b.inflight += 1
        return None

    def release(self, key: Any) -> None:
        """A request acquired for ``key`` finished."""
        b = self._buckets.get(key)
        if b is not None and b.inflight > 0:
            b.inflight -= 1

    def inflight(self, key: Any) -> int:
        """Requests of ``key`` in flight now."""
        b = self._buckets.get(key)
        return b.inflight if b else 0

    def _prune(self) -> None:
        if len(self._buckets) < self.max_keys:
            return
        # Forget idle callers (nothing in flight); a forgotten caller starts again with a full bucket,
        # which is what an idle one would have had anyway once refilled.
        self._buckets = {k: b for k, b in self._buckets.items() if b.inflight}
