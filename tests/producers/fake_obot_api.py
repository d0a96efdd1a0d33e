"""A local Obot audit API that enforces the rules of Obot's own handlers, per version line (test helper).

Version lines (``version``): ``"0.14"`` (<= v0.14), ``"0.23"`` (v0.15-v0.23), ``"0.24"`` (v0.24+).
Every rule below names the upstream file it comes from (obot-platform/obot unless said otherwise;
the line's newest tag: v0.14.0, v0.23.0, and the newest stored commit for v0.24+). Rows are stored
once, in Obot's storage shape, and presented the way each version presents them.
"""

from __future__ import annotations

import random
import re
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import Any

from aiohttp import web

from gateledger.contracts.envelope import utc_iso
from gateledger.jsonutil import parse_time

PageHook = Callable[[str, int], Awaitable[None]]
VERSIONS = ("0.14", "0.23", "0.24")

# pkg/api/handlers/mcpgateway/auditlog.go (parseAuditLogOpts): start_time/end_time are parsed with
# Go's time.Parse(time.RFC3339, ...), and a value that does not parse is silently IGNORED (no
# filter at all, no 400). Go's RFC3339 layout accepts fractional seconds, needs "T" and "Z"/offset.
_RFC3339 = re.compile(r"^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d+)?(Z|[+-]\d{2}:\d{2})$")

# v0.23.0 pkg/gateway/client/mcpauditlog.go (GetMCPAuditLogs): the sort allowlist; any other key
# falls back to "created_at DESC" (sort_order ignored), no error. Same list in v0.14.0.
_LEGACY_SORT = {"created_at", "mcp_id", "mcp_server_display_name", "mcp_server_catalog_entry_name", "call_type",
                "call_identifier", "processing_time_ms", "client_name", "client_version", "response_status",
                "client_ip"}
# pkg/gateway/client/mcpauditlog.go (mcpAuditLogSortColumns / localAgentAuditLogSortColumns):
# extra keys a single-source v0.24+ query may sort by.
_MCP_SORT = _LEGACY_SORT
_LOCAL_SORT = {"created_at", "occurred_at", "agent_provider", "status", "tool_name", "tool_kind", "duration_ms",
               "client_ip"}
# pkg/gateway/client/llmauditlog.go (GetLLMAuditLogs): unknown keys fall back to created_at.
_LLM_SORT = {"created_at", "user_id", "model_provider", "target_model", "request_path", "response_status",
             "outcome", "user_agent", "client_session_id"}


def _time(q: Any, name: str) -> datetime | None:
    raw = q.get(name, "")
    return parse_time(raw) if _RFC3339.match(raw) else None


def _int(q: Any, name: str, minimum: int) -> int:
    # parseAuditLogOpts: strconv.Atoi, kept only when > 0 (limit) / >= 0 (offset), else unset.
    try:
        v = int(q.get(name, ""))
    except ValueError:
        return 0
    return v if v >= minimum else 0


def _multi(q: Any, name: str) -> list[str]:
    # auditlog.go parseMultiValueParam: repeated and comma-separated values.
    return [p.strip() for v in q.getall(name, []) for p in v.split(",") if p.strip()]


def mcp_row(i: int, created: datetime, api_key_id: int | None = None) -> dict[str, Any]:
    """One stored MCP audit row (pkg/gateway/types/mcpauditlog.go storage fields)."""
    return {
        "source": "mcp", "id": i, "created": created, "userID": f"user-{i % 5}", "mcpID": f"ms{i % 3}",
        "mcpServerDisplayName": "GitHub", "mcpServerCatalogEntryName": "github", "clientName": "Cursor",
        "clientVersion": "1.7.2", "clientIP": "10.0.0.1", "callType": "tools/call",
        "callIdentifier": "search_issues", "responseStatus": 200, "processingTimeMs": 10 + i,
        "sessionID": f"sess-{i % 4}", "requestID": str(i), "apiKeyID": api_key_id,
        "apiKeyName": f"key {api_key_id}" if api_key_id else "",
        "requestBody": {"jsonrpc": "2.0", "id": i, "method": "tools/call",
                        "params": {"name": "search_issues", "arguments": {"q": "bug"}}},
        "responseBody": {"jsonrpc": "2.0", "id": i, "result": {"content": []}},
    }


def local_row(i: int, occurred: datetime, recorded: datetime) -> dict[str, Any]:
    """One stored local-agent tool call (pkg/gateway/types/mcpauditlog.go LocalAgentToolCallAuditLogFields)."""
    return {
        "source": "local", "id": i, "created": recorded, "occurred": occurred, "userID": f"user-{i % 5}",
        "clientIP": "10.0.0.9", "actorType": "device", "actorID": f"dev-{i % 2}", "actionName": "Bash",
        "actionKind": "shell", "targetType": "local_tool", "targetName": "Bash", "outcomeStatus": "success",
        "durationMs": 40 + i, "idempotencyKey": f"idem-{i}", "toolUseID": f"toolu-{i}", "sessionID": f"cc-{i % 3}",
        "turnID": f"turn-{i}", "agentProvider": "claude_code", "agentVersion": "2.0.1", "model": "claude-sonnet-4-5",
        "deviceID": f"dev-{i % 2}", "hostname": f"laptop-{i % 2}", "os": "darwin",
    }


def llm_row(i: int, created: datetime, api_key_id: int | None = None) -> dict[str, Any]:
    """One stored LLM gateway audit row (apiclient/types/llmauditlog.go: string id, numeric apiKeyID)."""
    row = {
        "id": f"llm-{i:05d}", "createdAt": utc_iso(created), "duration": 800 + i, "userID": f"user-{i % 5}",
        "modelProvider": "openai", "modelID": "gpt-4o", "targetModel": "gpt-4o", "requestPath": "/v1/chat/completions",
        "requestMethod": "POST", "responseStatus": 200, "outcome": "success", "inputTokens": 100 + i,
        "outputTokens": 0 if i % 10 == 0 else 20, "requestID": f"req-{i}", "responseID": f"resp-{i}",
    }
    if api_key_id is not None:
        row |= {"apiKeyID": api_key_id, "apiKeyName": f"key {api_key_id}"}  # `*uint`, omitempty
    return row


def present_flat(row: dict[str, Any], version: str, bodies: bool) -> dict[str, Any]:
    """apiclient/types/mcpauditlog.go at v0.14.0 / v0.23.0: the flat list item, client nested."""
    out = {"id": row["id"], "createdAt": utc_iso(row["created"]), "userID": row["userID"], "mcpID": row["mcpID"],
           "mcpServerDisplayName": row["mcpServerDisplayName"],
           "mcpServerCatalogEntryName": row["mcpServerCatalogEntryName"],
           "client": {"name": row["clientName"], "version": row["clientVersion"]}, "clientIP": row["clientIP"],
           "callType": row["callType"], "callIdentifier": row["callIdentifier"],
           "responseStatus": row["responseStatus"], "processingTimeMs": row["processingTimeMs"],
           "sessionID": row["sessionID"], "requestID": row["requestID"]}
    if version == "0.23":  # requestMutated / responseMutated arrived after v0.14
        out |= {"requestMutated": False, "responseMutated": False}
    if bodies:
        out |= {"requestBody": row["requestBody"], "responseBody": row["responseBody"]}
    return out


def _outcome(status: int, error: str) -> str:
    # pkg/auditlog/presenter.go ClassifyMCPOutcome.
    if status in (401, 403):
        return "denied"
    if status in (408, 504):
        return "timeout"
    if error or status >= 400:
        return "failure"
    return "success" if status > 0 else "unknown"


def present_event(row: dict[str, Any], details: bool, redacted: bool) -> dict[str, Any]:
    """pkg/auditlog/presenter.go Present: the v0.24+ AuditLogEvent (details only when asked)."""
    recorded = utc_iso(row["created"])
    if row["source"] == "local":
        ev: dict[str, Any] = {
            "id": row["id"], "eventType": "local_agent_tool_call",
            "timestamp": {"occurredAt": utc_iso(row["occurred"]), "recordedAt": recorded, "source": "client_reported"},
            "actor": {"actorType": row["actorType"], "id": row["actorID"]},
            "action": {"operation": "tools/call", "name": row["actionName"], "kind": row["actionKind"]},
            "target": {"targetType": row["targetType"], "name": row["targetName"]},
            "outcome": {"status": row["outcomeStatus"], "durationMs": row["durationMs"]},
            "client": row["agentProvider"],
        }
        if details:
            ev["details"] = {
                "trace": {"sessionID": row["sessionID"], "idempotencyKey": row["idempotencyKey"],
                          "toolUseID": row["toolUseID"], "turnID": row["turnID"]},
                "network": {"clientIP": row["clientIP"]},
                "agent": {"provider": row["agentProvider"], "version": row["agentVersion"], "model": row["model"]},
                # blankLocalAgentSensitiveFields (pkg/gateway/client/mcpauditlog.go): hostname only with payloads.
                "device": {"id": row["deviceID"], "os": row["os"],
                           **({} if redacted else {"hostname": row["hostname"]})},
                "request": {"mutated": False}, "response": {"mutated": False}, "payloadRedacted": redacted,
            }
        return ev
    status = row["responseStatus"]
    cred = row["apiKeyName"] or ""
    ev = {
        "id": row["id"], "eventType": "mcp_call",
        "timestamp": {"occurredAt": recorded, "recordedAt": recorded, "source": "server"},
        "actor": {"actorType": "user", "id": row["userID"], **({"credentialID": cred} if cred else {})},
        "action": {"operation": row["callType"], "name": row["callIdentifier"]},
        "target": {"targetType": "mcp_tool", "name": row["callIdentifier"],
                   "parent": {"targetType": "mcp_server", "id": row["mcpID"], "name": row["mcpServerDisplayName"]}},
        "outcome": {"status": _outcome(status, ""), "httpStatus": status, "durationMs": row["processingTimeMs"]},
        "client": row["clientName"],
    }
    if details:
        ev["details"] = {
            "trace": {"sessionID": row["sessionID"], "requestID": row["requestID"]},
            "network": {"clientIP": row["clientIP"]},
            "client": {"name": row["clientName"], "version": row["clientVersion"]},
            "scope": {"mcpServerCatalogEntryName": row["mcpServerCatalogEntryName"]},
            "request": {"mutated": False, **({} if redacted else {"body": row["requestBody"]})},
            "response": {"mutated": False, **({} if redacted else {"body": row["responseBody"]})},
            "payloadRedacted": redacted,
        }
    return ev


class FakeObotApi:
    """Stored rows, an API token and role, failure injection and a hook run before each page is cut."""

    def __init__(self, token: str = "obot-api-key", version: str = "0.24", role: str = "admin", seed: int = 7) -> None:
        assert version in VERSIONS and role in ("admin", "auditor", "user")
        self.token = token
        self.version = version
        self.role = role
        self.rows: dict[str, list[dict[str, Any]]] = {"mcp": [], "llm": []}
        self.fail_next = 0
        self.hook: PageHook | None = None
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.refused: list[tuple[str, int, str]] = []  # every 4xx answered: (path, status, message)
        self.rng = random.Random(seed)
        self._next_id = 1

    # -- storing ---------------------------------------------------------------------------------

    def _ids(self, n: int, first_id: int | None) -> range:
        first = first_id if first_id is not None else self._next_id
        self._next_id = max(self._next_id, first + n)
        return range(first, first + n)

    def add_mcp(self, n: int, start: datetime, step_s: float, tie: int = 1, first_id: int | None = None,
                api_key_id: int | None = None) -> None:
        """n MCP rows from ``start``, ``tie`` rows sharing each timestamp."""
        for k, i in enumerate(self._ids(n, first_id)):
            self.rows["mcp"].append(mcp_row(i, start + timedelta(seconds=step_s * (k // tie)), api_key_id))

    def add_local(self, n: int, occurred: datetime, step_s: float, recorded: datetime | None = None) -> None:
        """n local-agent tool calls (``occurred`` is client-reported; ``recorded`` is Obot's clock)."""
        for k, i in enumerate(self._ids(n, None)):
            t = occurred + timedelta(seconds=step_s * k)
            self.rows["mcp"].append(local_row(i, t, recorded or t))

    def add_llm(self, n: int, start: datetime, step_s: float, tie: int = 1, api_key_id: int | None = None) -> None:
        first = len(self.rows["llm"]) + 1
        for k in range(n):
            self.rows["llm"].append(llm_row(first + k, start + timedelta(seconds=step_s * (k // tie)), api_key_id))

    # -- answering -------------------------------------------------------------------------------

    def _refuse(self, request: web.Request, status: int, message: str) -> web.Response:
        self.refused.append((request.path, status, message))
        return web.json_response({"error": message}, status=status)

    async def _gate(self, request: web.Request, stream: str) -> web.Response | None:
        self.requests.append((stream, dict(request.query)))
        if request.headers.get("Authorization") != f"Bearer {self.token}":
            return self._refuse(request, 401, "unauthorized")
        if self.fail_next:
            self.fail_next -= 1
            return web.Response(status=500, text="internal error")
        return None

    async def list_mcp(self, request: web.Request) -> web.Response:
        if (refused := await self._gate(request, "mcp")) is not None:
            return refused
        q = request.query
        if self.version != "0.24":
            return await self._list_legacy(request)
        # auditlog.go parseAuditLogEventTypes: source_type is refused, event_type validated.
        if "source_type" in q:
            return self._refuse(request, 400, "source_type is not supported; use event_type")
        sources = set()
        for et in _multi(q, "event_type"):
            if et not in ("mcp_call", "local_agent_tool_call"):
                return self._refuse(request, 400, f"invalid event_type: {et}")
            sources.add("mcp" if et == "mcp_call" else "local")
        privileged = self.role in ("admin", "auditor")
        # auditlog.go defaultAuditLogSources: admins and auditors read both sources, others MCP only;
        # authorizeAuditLogSources: local-agent logs are 403 for everyone else.
        sources = sources or ({"mcp", "local"} if privileged else {"mcp"})
        if "local" in sources and not privileged:
            return self._refuse(request, 403, "you do not have access to local agent tool call audit logs")
        sort_by, order = q.get("sort_by", ""), q.get("sort_order", "")
        # pkg/gateway/client/mcpauditlog.go ValidateAuditLogOptions + auditLogSortExpression.
        if order not in ("", "asc", "desc"):
            return self._refuse(request, 400, f'invalid audit log filters: invalid audit log sort direction "{order}"')
        if sort_by not in ("", "timestamp", "event_type", "duration"):
            if len(sources) != 1:
                return self._refuse(request, 400, f'invalid audit log filters: sort key "{sort_by}" is not supported '
                                                  "for mixed audit logs")
            if sort_by not in (_MCP_SORT if sources == {"mcp"} else _LOCAL_SORT):
                return self._refuse(request, 400, f'invalid audit log filters: invalid audit log sort key "{sort_by}"')
        # mcpauditlog.go auditLogEventTimeExpression / effectiveAuditLogTimeSQL: one source filters on
        # its own column; mixed lists on occurred_at for local-agent rows, created_at for MCP rows.
        def event_time(r: dict[str, Any]) -> datetime:
            if sources == {"mcp"}:
                return r["created"]
            if sources == {"local"}:
                return r["occurred"]
            return r["occurred"] if r["source"] == "local" else r["created"]

        # auditlog.go ListAuditLogs: no default start_time; limit defaults to 100.
        start, end = _time(q, "start_time"), _time(q, "end_time")
        limit, offset = _int(q, "limit", 1) or 100, _int(q, "offset", 0)
        rows = [r for r in self.rows["mcp"] if r["source"] in sources
                and (start is None or event_time(r) >= start) and (end is None or event_time(r) < end)]

        def key(r: dict[str, Any]) -> Any:
            # GetMCPAuditLogs: ORDER BY <sort>, <event time> (if different), id — all one direction.
            if sort_by == "event_type":
                return (0 if r["source"] == "mcp" else 1, event_time(r), r["id"])
            if sort_by == "duration":
                return (r.get("durationMs") or r.get("processingTimeMs") or 0, event_time(r), r["id"])
            if sort_by in ("created_at", "occurred_at"):
                return (r["created"] if sort_by == "created_at" else r["occurred"], event_time(r), r["id"])
            return (event_time(r), r["id"])

        rows.sort(key=key, reverse=order != "asc")
        if self.hook is not None:
            await self.hook("mcp", offset)
        # ListAuditLogs: WithRequestAndResponse = false, Present without details.
        items = [present_event(r, details=False, redacted=True) for r in rows[offset: offset + limit]]
        return web.json_response({"items": items, "total": len(rows), "limit": limit, "offset": offset})

    async def _list_legacy(self, request: web.Request) -> web.Response:
        q = request.query
        start, end = _time(q, "start_time"), _time(q, "end_time")
        # v0.23.0 auditlog.go ListAuditLogs: limit defaults to 100; v0.14.0 has no default (all rows).
        limit, offset = _int(q, "limit", 1) or (100 if self.version == "0.23" else 0), _int(q, "offset", 0)
        rows = [r for r in self.rows["mcp"] if r["source"] == "mcp"
                and (start is None or r["created"] >= start) and (end is None or r["created"] < end)]
        sort_by = q.get("sort_by", "")
        asc = sort_by in _LEGACY_SORT and q.get("sort_order") == "asc"
        field = sort_by if sort_by in ("created_at", "processing_time_ms") else "created_at"
        self.rng.shuffle(rows)  # ORDER BY one column only: ties come back in any order
        rows.sort(key=lambda r: r["created"] if field == "created_at" else r["processingTimeMs"], reverse=not asc)
        if self.hook is not None:
            await self.hook("mcp", offset)
        page = rows[offset: offset + limit] if limit else rows[offset:]
        items = [present_flat(r, self.version, bodies=False) for r in page]
        return web.json_response({"items": items, "total": len(rows), "limit": limit, "offset": offset})

    async def detail(self, request: web.Request) -> web.Response:
        if (refused := await self._gate(request, "detail")) is not None:
            return refused
        # pkg/api/router/router.go: the detail route exists from v0.23 (GetAuditLog); before, "/api/"
        # falls through to http.NotFoundHandler().
        if self.version == "0.14":
            return self._refuse(request, 404, "404 page not found")
        raw = request.match_info["audit_log_id"]
        if not raw.isdigit():  # auditlog.go GetAuditLog: fmt.Sscanf(id, "%d")
            return self._refuse(request, 400, f"invalid audit log id: {raw}")
        row = next((r for r in self.rows["mcp"] if r["id"] == int(raw)), None)
        if row is None:
            return self._refuse(request, 404, "record not found")
        if self.version == "0.23":
            return web.json_response(present_flat(row, self.version, bodies=True))
        if row["source"] == "local" and self.role not in ("admin", "auditor"):
            return self._refuse(request, 403, "you do not have access to this audit log")
        # GetAuditLog: full payload for auditors (and owners); admins get the redacted detail.
        return web.json_response(present_event(row, details=True, redacted=self.role != "auditor"))

    async def list_llm(self, request: web.Request) -> web.Response:
        # pkg/api/router/router.go: GET /api/llm-audit-logs is registered from v0.24.0; before, every
        # unknown /api/ path is http.NotFoundHandler() — a plain 404.
        if self.version != "0.24":
            self.requests.append(("llm", dict(request.query)))
            self.refused.append((request.path, 404, "404 page not found"))
            return web.Response(status=404, text="404 page not found\n")
        if (refused := await self._gate(request, "llm")) is not None:
            return refused
        # pkg/api/authz/authz.go: GET /api/llm-audit-logs is in the admin/owner and auditor rules only.
        if self.role == "user":
            return self._refuse(request, 403, "forbidden")
        q = request.query
        start, end = _time(q, "start_time"), _time(q, "end_time")
        # pkg/api/handlers/llmauditlog.go List: limit defaults to 100.
        limit, offset = _int(q, "limit", 1) or 100, _int(q, "offset", 0)
        rows = [r for r in self.rows["llm"] if (start is None or parse_time(r["createdAt"]) >= start)
                and (end is None or parse_time(r["createdAt"]) < end)]
        # pkg/gateway/client/llmauditlog.go GetLLMAuditLogs: ORDER BY one column, no tie-break.
        self.rng.shuffle(rows)
        rows.sort(key=lambda r: parse_time(r["createdAt"]), reverse=q.get("sort_order") != "asc")
        if self.hook is not None:
            await self.hook("llm", offset)
        page = rows[offset: offset + limit]
        return web.json_response({"items": page, "total": len(rows), "limit": limit, "offset": offset})

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_get("/api/mcp-audit-logs", self.list_mcp)
        app.router.add_get("/api/mcp-audit-logs/detail/{audit_log_id}", self.detail)
        app.router.add_get("/api/llm-audit-logs", self.list_llm)
        return app


class ServedInThread:
    """The fake on 127.0.0.1 in its own thread and event loop, for tests that drive subprocesses."""

    def __init__(self, api: FakeObotApi) -> None:
        self.api = api
        self.url = ""

    def __enter__(self) -> ServedInThread:
        import asyncio
        import threading

        started = threading.Event()
        self.loop = asyncio.new_event_loop()

        async def start() -> None:
            self.runner = web.AppRunner(self.api.app())
            await self.runner.setup()
            site = web.TCPSite(self.runner, "127.0.0.1", 0)
            await site.start()
            port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]  # noqa: SLF001
            self.url = f"http://127.0.0.1:{port}"
            started.set()

        def serve() -> None:
            self.loop.run_until_complete(start())
            self.loop.run_forever()

        self.thread = threading.Thread(target=serve, daemon=True)
        self.thread.start()
        assert started.wait(10), "fake Obot API did not start"
        return self

    def __exit__(self, *exc: object) -> None:
        import asyncio

        asyncio.run_coroutine_threadsafe(self.runner.cleanup(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(10)
