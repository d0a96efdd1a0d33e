"""Per-caller rate and concurrency limits of the ingest routes: 429 + ``Retry-After`` beyond them.

A caller is its bearer token when the token is one the service knows (so honest tenants sharing a
gateway address do not share a budget), else its peer address (so inventing tokens buys nothing).
Each caller has a token bucket (``rate_limit_per_s`` refilled, ``rate_limit_burst`` deep; a token's grant
may set its own) and a cap
on requests in flight (``max_concurrent_per_caller``). A refused request costs nothing else: it is
answered before its body is read and counted into one coalesced dead letter per caller and window
(gateledger/refusals.py), so a flood never reaches Kafka request by request.
"""

from __future__ import annotations

import math
from typing import Any

from aiohttp import web

from gateledger.ratelimit import Limiter
from producers import telemetry
from producers.ingest.common import STATE, bearer_token, json_error, token_digest
from producers.ingest.settings import TokenGrant

OPEN_PATHS = frozenset({"/metrics", "/healthz"})


LIMITER = web.AppKey("ingest_limiter", Limiter)


def caller_key(request: web.Request) -> tuple[str, Any]:
    """The caller a request is counted against: a known token, else the peer address."""
    return _caller(request)[0]


def _caller(request: web.Request) -> tuple[tuple[str, Any], TokenGrant | None]:
    token = bearer_token(request)
    if token is not None:
        digest = token_digest(token)
        grant = request.config_dict[STATE].token_index.get(digest)
        if grant is not None:
            return ("token", digest), grant
    return ("peer", request.remote), None


@web.middleware
async def limits_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """429 + Retry-After beyond the caller's rate or concurrency; the request runs otherwise."""
    limiter = request.config_dict.get(LIMITER)  # config_dict: sub-applications (the tap) included
    if limiter is None or request.path in OPEN_PATHS:
        return await handler(request)
    key, grant = _caller(request)
    refused = limiter.acquire(key, *((grant.rate_limit_per_s, grant.rate_limit_burst) if grant else ()))
    if refused is not None:
        reason, wait_s = refused
        telemetry.REJECTED.labels(source="http", reason=reason).inc()
        raise json_error(429, f"too many requests from this caller ({reason.replace('_', ' ')})", reason=reason,
                         headers={"Retry-After": str(max(1, math.ceil(wait_s)))})
    try:
        return await handler(request)
    finally:
        limiter.release(key)
