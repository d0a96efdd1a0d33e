"""Per-caller rate and concurrency limits of the ingest routes: 429 + ``Retry-After`` beyond them.

A caller is its bearer token when the token is one the service knows (so honest tenants sharing a
gateway address do not share a budget), else its peer address (so inventing tokens buys nothing).
Each caller has a token bucket (``rate_limit_per_s`` refilled, ``rate_limit_burst`` deep) and a cap
on requests in flight (``max_concurrent_per_caller``). A refused request costs nothing else: it is
answered before its body is read, counted, and not dead-lettered (a flood must not reach Kafka).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from producers import telemetry
from producers.ingest.common import STATE, bearer_token, json_error, token_digest

OPEN_PATHS = frozenset({"/metrics", "/healthz"})


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

    def acquire(self, key: Any) -> tuple[str, float] | None:
        """None when the request may go ahead (release it later), else (reason, seconds to wait)."""
        now = self.clock()
        b = self._buckets.get(key)
        if b is None:
            self._prune()
            b = self._buckets[key] = _Bucket(float(self.burst), now)
        if self.rate > 0:
            b.tokens = min(float(self.burst), b.tokens + (now - b.stamp) * self.rate)
        b.stamp = now
        if self.max_concurrent > 0 and b.inflight >= self.max_concurrent:
            return "concurrency_limited", 1.0
        if self.rate > 0:
            if b.tokens < 1.0:
                return "rate_limited", (1.0 - b.tokens) / self.rate
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


LIMITER = web.AppKey("ingest_limiter", Limiter)


def caller_key(request: web.Request) -> tuple[str, Any]:
    """The caller a request is counted against: a known token, else the peer address."""
    token = bearer_token(request)
    if token is not None:
        digest = token_digest(token)
        if digest in request.config_dict[STATE].token_index:
            return ("token", digest)
    return ("peer", request.remote)


@web.middleware
async def limits_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """429 + Retry-After beyond the caller's rate or concurrency; the request runs otherwise."""
    limiter = request.config_dict.get(LIMITER)  # config_dict: sub-applications (the tap) included
    if limiter is None or request.path in OPEN_PATHS:
        return await handler(request)
    key = caller_key(request)
    refused = limiter.acquire(key)
    if refused is not None:
        reason, wait_s = refused
        telemetry.REJECTED.labels(source="http", reason=reason).inc()
        raise json_error(429, f"too many requests from this caller ({reason.replace('_', ' ')})", reason=reason,
                         headers={"Retry-After": str(max(1, math.ceil(wait_s)))})
    try:
        return await handler(request)
    finally:
        limiter.release(key)
