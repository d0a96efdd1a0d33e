"""HTTP access to Obot's audit API: list pages, one record's detail, and which version line answers.

Facts from obot-platform/obot: ``pkg/api/router/router.go`` registers ``GET /api/llm-audit-logs``
from v0.24.0 on, and answers every unknown ``/api/`` path with ``http.NotFoundHandler()`` (404);
the MCP list answers ``{items, total, limit, offset}`` in every version
(``apiclient/types/mcpauditlog.go``, ``apiclient/types/auditlogevent.go``).
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from typing import Any, Literal

import aiohttp

from gateledger import jsonutil
from producers import telemetry

PATHS = {"mcp": "/api/mcp-audit-logs", "llm": "/api/llm-audit-logs"}
DETAIL_PATH = "/api/mcp-audit-logs/detail/"

ApiShape = Literal["flat", "event"]
"""``flat``: up to v0.23 (flat MCP records, ``sort_by=created_at``); ``event``: v0.24+ (AuditLogEvent)."""


class PollError(RuntimeError):
    """The Obot API did not give a usable answer (network error, non-2xx, not a page)."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class EndpointMissing(PollError):
    """The endpoint answered 404: this Obot version does not have it."""


class ObotApi:
    """GET requests against one Obot installation, with its API key."""

    def __init__(self, base: str, token: str | None, session: aiohttp.ClientSession) -> None:
        self.base = base.rstrip("/")
        self.session = session
        self.headers = {"Accept": "application/json"}
        if token:
            self.headers["Authorization"] = f"Bearer {token}"

    async def get_json(self, path: str, params: dict[str, str] | None = None) -> Any:
        """The decoded JSON answer; EndpointMissing on 404, PollError on anything else but 200."""
        try:
            async with self.session.get(self.base + path, params=params, headers=self.headers) as resp:
                body = await resp.read()
                status = resp.status
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise PollError(f"GET {path} failed: {exc!r}") from exc
        if status == 404:
            raise EndpointMissing(f"GET {path} answered 404: {body[:200]!r}", 404)
        if status != 200:
            raise PollError(f"GET {path} answered {status}: {body[:300]!r}", status)
        try:
            return jsonutil.loads(body)
        except jsonutil.JSONDecodeError as exc:
            raise PollError(f"GET {path} returned invalid JSON: {exc}") from exc

    async def page(self, stream: str, params: dict[str, str]) -> tuple[list[Any], int | None]:
        """One list page and the total Obot reports."""
        page = await self.get_json(PATHS[stream], params)
        items = page.get("items") if isinstance(page, dict) else None
        if not isinstance(items, list):
            raise PollError(f"GET {PATHS[stream]} returned no items list")
        total = page.get("total")
        return items, total if isinstance(total, int) else None

    async def detail(self, record_id: Any) -> dict[str, Any] | None:
        """One MCP audit record with its ``details`` (None when Obot no longer has it)."""
        try:
            body = await self.get_json(f"{DETAIL_PATH}{record_id}")
        except EndpointMissing:
            return None
        if not isinstance(body, dict):
            raise PollError(f"GET {DETAIL_PATH}{record_id} returned no object")
        return body

    async def shape(self) -> ApiShape:
        """Which version line answers: the LLM audit list exists from v0.24.0 on (router.go)."""
        try:
            await self.get_json(PATHS["llm"], {"limit": "1"})
        except EndpointMissing:
            return "flat"
        except PollError as exc:
            if exc.status != 403:
                raise  # a wrong key, an unreachable or failing server says nothing about the version
            # 403: an API key without LLM audit access, but the route exists.
        return "event"


class DetailCache:
    """Details fetched recently (a re-read of the overlap window or a retried page costs nothing)."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._items: OrderedDict[str, dict[str, Any]] = OrderedDict()

    def get(self, key: str) -> dict[str, Any] | None:
        """The cached detail, refreshed as most recent."""
        item = self._items.get(key)
        if item is not None:
            self._items.move_to_end(key)
        return item

    def put(self, key: str, item: dict[str, Any]) -> None:
        """Remember one detail, dropping the oldest beyond the size."""
        self._items[key] = item
        self._items.move_to_end(key)
        while len(self._items) > self.size:
            self._items.popitem(last=False)


async def with_details(api: ObotApi, items: list[Any], cache: DetailCache, concurrency: int) -> list[Any]:
    """The list items replaced by their detail records (v0.24+ list items carry no ``details``).

    obot-platform/obot pkg/api/handlers/mcpgateway/auditlog.go: ``ListAuditLogs`` presents rows
    without details; ``GetAuditLog`` (``/detail/{id}``) with them (trace ids, client version,
    device). At most ``concurrency`` look-ups run at once; a record deleted meanwhile (404) keeps
    its list form.
    """
    sem = asyncio.Semaphore(max(1, concurrency))

    async def one(item: Any) -> Any:
        if not isinstance(item, dict) or item.get("id") in (None, "") or isinstance(item.get("details"), dict):
            return item
        key = str(item["id"])
        cached = cache.get(key)
        if cached is not None:
            telemetry.POLLER_DETAILS.labels(result="cached").inc()
            return cached
        async with sem:
            detail = await api.detail(key)
        if detail is None:
            telemetry.POLLER_DETAILS.labels(result="missing").inc()
            return item
        telemetry.POLLER_DETAILS.labels(result="fetched").inc()
        cache.put(key, detail)
        return detail

    return list(await asyncio.gather(*(one(i) for i in items)))
