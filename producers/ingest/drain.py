"""Draining: on SIGUSR1 (sent by ``gateledger up`` when it stops) the ingest refuses new records.

Every route except health and metrics answers 503 + ``Retry-After``, so a caller keeps its records
and sends them again to the next stack, while the supervisor waits for what was already accepted
to go through the pipeline. The port stays open until the very end: a refused connection would
tell a client nothing about when to retry.
"""

from __future__ import annotations

from typing import Any

from aiohttp import web

from producers.ingest.common import json_error

_OPEN_PATHS = ("/healthz", "/metrics")


class Drain:
    """Whether this process is draining (one flag per process: set from a signal handler)."""

    draining = False

    @classmethod
    def start(cls) -> None:
        """Refuse new records from now on."""
        cls.draining = True


def drain_middleware(retry_after_s: Any) -> Any:
    """Middleware answering 503 + Retry-After to records while draining."""

    @web.middleware
    async def middleware(request: web.Request, handler: Any) -> web.StreamResponse:
        if Drain.draining and request.path not in _OPEN_PATHS:
            return json_error(503, "stopping, retry later", headers={"Retry-After": str(retry_after_s)}).response()
        return await handler(request)

    return middleware
