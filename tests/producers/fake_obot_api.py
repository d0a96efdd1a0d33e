"""A local Obot audit API serving recorded rows exactly as Obot's list handlers page them (test helper).

``created_at >= start_time AND created_at < end_time``, ``ORDER BY created_at`` with ties in an
unstable order (shuffled per request, as a database may), ``LIMIT`` / ``OFFSET``, and a response
``{items, total, limit, offset}``. MCP rows are presented flat (<= v0.23) or as ``AuditLogEvent``
(v0.24+), the way Obot's presenter maps them.
"""

from __future__ import annotations

import random
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from gateledger.contracts.envelope import utc_iso
from gateledger.jsonutil import parse_time

PageHook = Callable[[str, int], Awaitable[None]]


def flat_row(i: int, created: datetime) -> dict[str, Any]:
    """One stored MCP audit row in the v0.23 flat shape."""
    return {
        "id": i,
        "createdAt": utc_iso(created),
        "userID": f"user-{i % 5}",
        "mcpID": f"ms{i % 3}",
        "mcpServerDisplayName": "GitHub",
        "mcpServerCatalogEntryName": "github",
        "client": {"name": "Cursor", "version": "1.7.2"},
        "clientIP": "10.0.0.1",
        "callType": "tools/call",
        "callIdentifier": "search_issues",
        "responseStatus": 200,
        "processingTimeMs": 10 + i,
        "sessionID": f"sess-{i % 4}",
        "requestID": str(i),
        "webhookStatuses": [],
    }


def as_event(row: dict[str, Any]) -> dict[str, Any]:
    """The v0.24 list presentation of a stored row (no details in list responses)."""
    status = row["responseStatus"]
    return {
        "id": row["id"],
        "eventType": "mcp_call",
        "client": row["client"]["name"],
        "timestamp": {"occurredAt": row["createdAt"], "recordedAt": row["createdAt"], "source": "server"},
        "actor": {"actorType": "user", "id": row["userID"]},
        "action": {"operation": row["callType"], "name": row["callIdentifier"]},
        "target": {"targetType": "mcp_tool", "name": row["callIdentifier"],
                   "parent": {"targetType": "mcp_server", "id": row["mcpID"], "name": row["mcpServerDisplayName"]}},
        "outcome": {"status": "success" if status < 400 else "failure", "httpStatus": status,
                    "durationMs": row["processingTimeMs"]},
    }


def llm_row(i: int, created: datetime) -> dict[str, Any]:
    """One stored LLM gateway audit row (string ids, as Obot has them)."""
    return {
        "id": f"llm-{i:05d}",
        "createdAt": utc_iso(created),
        "duration": 800 + i,
        "userID": f"user-{i % 5}",
        "modelProvider": "openai",
        "modelID": "gpt-4o",
        "requestPath": "/v1/chat/completions",
        "responseStatus": 200,
        "outcome": "success",
        "inputTokens": 100 + i,
        "outputTokens": 0 if i % 10 == 0 else 20,
        "requestID": f"req-{i}",
    }


class FakeObotApi:
    """Rows per stream, an API token, failure injection and a hook run before each page is cut."""

    def __init__(self, token: str = "obot-api-key", shape: str = "flat", seed: int = 7) -> None:
        self.token = token
        self.shape = shape
        self.rows: dict[str, list[dict[str, Any]]] = {"mcp": [], "llm": []}
        self.fail_next = 0
        self.hook: PageHook | None = None
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.rng = random.Random(seed)

    def add_mcp(self, n: int, start: datetime, step_s: float, tie: int = 1, first_id: int | None = None) -> None:
        """n rows from ``start``, ``tie`` rows sharing each timestamp."""
        first = first_id if first_id is not None else len(self.rows["mcp"]) + 1
        for k in range(n):
            self.rows["mcp"].append(flat_row(first + k, start + timedelta(seconds=step_s * (k // tie))))

    def add_llm(self, n: int, start: datetime, step_s: float, tie: int = 1) -> None:
        first = len(self.rows["llm"]) + 1
        for k in range(n):
            self.rows["llm"].append(llm_row(first + k, start + timedelta(seconds=step_s * (k // tie))))

    async def handle(self, request: web.Request, stream: str) -> web.Response:
        self.requests.append((stream, dict(request.query)))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return web.json_response({"error": "unauthorized"}, status=401)
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500, text="internal error")
        q = request.query
        limit = int(q.get("limit", "100"))
        offset = int(q.get("offset", "0"))
        if self.hook is not None:
            await self.hook(stream, offset)
        start = parse_time(q["start_time"]) if "start_time" in q else datetime.now(UTC) - timedelta(days=30)
        end = parse_time(q["end_time"]) if "end_time" in q else None
        rows = [r for r in self.rows[stream]
                if parse_time(r["createdAt"]) >= start and (end is None or parse_time(r["createdAt"]) < end)]
        self.rng.shuffle(rows)  # ties come back in any order
        rows.sort(key=lambda r: parse_time(r["createdAt"]), reverse=q.get("sort_order") != "asc")
        page = rows[offset : offset + limit]
        items = [as_event(r) for r in page] if stream == "mcp" and self.shape == "event" else page
        return web.json_response({"items": items, "total": len(rows), "limit": limit, "offset": offset})

    def app(self) -> web.Application:
        app = web.Application()

        async def mcp(request: web.Request) -> web.Response:
            return await self.handle(request, "mcp")

        async def llm(request: web.Request) -> web.Response:
            return await self.handle(request, "llm")

        app.router.add_get("/api/mcp-audit-logs", mcp)
        app.router.add_get("/api/llm-audit-logs", llm)
        return app
