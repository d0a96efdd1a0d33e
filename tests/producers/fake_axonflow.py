"""A local AxonFlow upstream in AxonFlow's wire format, for the tap, the audit poller and the stack tests.

Each rule names the upstream file it comes from (getaxonflow/axonflow).
"""

from __future__ import annotations

import asyncio
import gzip
import uuid
from datetime import UTC, datetime, timedelta
from typing import Any

from aiohttp import web

from producers.axonflow.auth import basic_client_id


def _text(value: Any) -> bool:
    """A non-empty JSON string (Go's json decoding of a string field refuses any other type: 400)."""
    return isinstance(value, str) and bool(value)


def check_input_refused(body: Any) -> web.Response | None:
    """The 400 AxonFlow answers a malformed MCP check-input, else None."""
    # platform/agent/mcp_handler.go, mcpCheckInputHandler: a body that does not decode is 400 "Invalid
    # request body"; connector_type and statement required (400).
    if not isinstance(body, dict):
        return web.json_response({"error": "Invalid request body"}, status=400)
    if not _text(body.get("connector_type")) or not _text(body.get("statement")):
        return web.json_response({"error": "connector_type and statement are required"}, status=400)
    return None


def check_output_refused(body: Any) -> web.Response | None:
    """The 400 AxonFlow answers a malformed MCP check-output, else None."""
    # mcp_handler.go, mcpCheckOutputHandler: connector_type and (response_data or message) required.
    if not isinstance(body, dict):
        return web.json_response({"error": "Invalid request body"}, status=400)
    if not _text(body.get("connector_type")) or not (body.get("response_data") or _text(body.get("message"))):
        return web.json_response({"error": "response_data or message is required"}, status=400)
    return None


def decide_refused(body: Any) -> web.Response | None:
    """The 400 AxonFlow answers a malformed decide request, else None."""
    # The SDK's axonflow/types.py DecideRequest / DecideResponse (mirroring the platform's): stage (llm,
    # tool or agent) and query required, else 400; a deny is a verdict in a 200 body.
    if not isinstance(body, dict) or body.get("stage") not in ("llm", "tool", "agent") or not _text(body.get("query")):
        return web.json_response({"verdict": "deny", "error": "stage and query are required"}, status=400)
    return None


class FakeAxonFlow:
    """AxonFlow as its source answers (getaxonflow/axonflow platform/agent/gateway_handlers.go for the
    Gateway Mode pair, platform/agent/mcp_handler.go for the MCP checks; each rule names its file)."""

    def __init__(self) -> None:
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self.n = 0
        # Set: every pre-check is refused by AxonFlow's own budget check (block reason, budget).
        self.budget_block: tuple[str, str] | None = None
        # Set: AxonFlow warns (warn-action budget over its limit) in X-Budget-Warning.
        self.budget_warning: str | None = None
        # Client ids whose credentials AxonFlow refuses (401), e.g. a revoked client.
        self.revoked: set[str] = set()
        # AxonFlow's own audit trail (the audit_logs rows POST /api/v1/audit/search reads), oldest first.
        self.audit_trail: list[dict[str, Any]] = []
        # False: the search as the stored audit_logger.go runs it, whose criteria type assertion never
        # matches the handler's tagged struct: no WHERE, no ORDER BY, no LIMIT (every row).
        self.search_applies_criteria = True
        # Gateway Mode LLM-call audits: llm_call_audits, a table the audit search never reads.
        self.llm_call_audits: list[dict[str, Any]] = []

    def _audit_row(self, request: web.Request, **fields: Any) -> None:
        # platform/orchestrator/audit_logger.go AuditEntry: no omitempty on these, so the search
        # answer carries every one of them (zero values included).
        client = basic_client_id(request.headers.get("Authorization")) or ""
        row = {"id": "", "request_id": "", "timestamp": datetime.now(UTC).isoformat(), "user_id": 0,
               "user_email": "", "user_role": "", "client_id": client, "tenant_id": client, "request_type": "",
               "query": "", "query_hash": "", "policy_decision": "", "policy_details": {}, "provider": "",
               "model": "", "response_time_ms": 0, "tokens_used": 0, "cost": 0, "redacted_fields": None,
               "response_sample": "", "compliance_flags": None, "security_metrics": None}
        self.audit_trail.append(row | fields)

    async def record(self, request: web.Request) -> bytes:
        body = await request.read()
        self.seen.append((request.method, request.path_qs, dict(request.headers), body))
        return body

    def _refused(self, request: web.Request) -> web.Response | None:
        # platform/agent/auth.go: bad credentials are a 401 before any handler logic;
        # sendGatewayError writes {"error": ...} (gateway_handlers.go).
        client = basic_client_id(request.headers.get("Authorization"))
        if client in self.revoked:
            return web.json_response({"error": "Invalid credentials"}, status=401)
        return None

    async def precheck(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.record(request)
        if (refused := self._refused(request)) is not None:
            return refused
        self.n += 1
        if self.budget_block is not None:
            reason, budget_id = self.budget_block
            # gateway_handlers.go, issue #1082: costService.CheckBudget said no -> WriteHeader(402) and
            # json.NewEncoder(w).Encode(PreCheckResponse{ContextID: uuid, Approved: false, Policies:
            # ["budget_exceeded"], BlockReason: Message, BudgetInfo: {float64 amounts}, ExpiresAt:
            # time.Now()}): Go's field order, omitempty, RFC 3339 nano time, a trailing newline.
            # Written out by hand here, independent of the encoder under test.
            payload = (
                '{"context_id":"%s","approved":false,"policies":["budget_exceeded"],"budget_info":'
                '{"budget_id":"%s","budget_name":"%s","used_usd":2.5,"limit_usd":2,"percentage":125,'
                '"exceeded":true,"action":"block"},"expires_at":"%s","block_reason":"%s"}\n'
            ) % (uuid.uuid4(), budget_id, budget_id,
                 datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%S.%f") + "123Z", reason)
            return web.Response(body=payload.encode(), status=402, headers={"Content-Type": "application/json"})
        if "DROP TABLE" in body["query"]:
            return web.json_response({"approved": False, "block_reason": "SQL injection detected",
                                      "policy": "sql_injection"}, status=403)
        now = datetime.now(UTC)
        # gateway_handlers.go recordGatewayPreCheckAudit -> decision_handler.go writeDecisionAuditLog
        # (#2642): one audit_logs row per pre-check, id "decide_" + context id, request_id the
        # context id, request_type "decision_" + stage, plane "gateway" (#2592), no provider/tokens.
        self._audit_row(request, id=f"decide_ctx-{self.n}", request_id=f"ctx-{self.n}", request_type="decision_llm",
                        policy_decision="allowed", plane="gateway")
        # gateway_handlers.go: a warn-action budget over its limit sets X-Budget-Warning and approves.
        headers = {"X-Budget-Warning": self.budget_warning} if self.budget_warning else None
        return web.json_response(headers=headers, data={
            "context_id": f"ctx-{self.n}",
            "approved": True,
            "requires_redaction": False,
            "approved_data": {},
            "policies": ["pii_detection"],
            "rate_limit": {"limit": 100, "remaining": 99, "reset_at": (now + timedelta(minutes=1)).isoformat()},
            "expires_at": (now + timedelta(minutes=5)).isoformat(),
            "trace_id": f"axf-{self.n}",
        })

    async def audit(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.record(request)
        if (refused := self._refused(request)) is not None:
            return refused
        # gateway_handlers.go storeLLMCallAudit / audit_queue.go AuditTypeLLMCallAudit: the audit is
        # stored in llm_call_audits (prompt/completion split there), not in audit_logs.
        self.llm_call_audits.append({"audit_id": f"aud-{body['context_id']}", "context_id": body["context_id"],
                                     "provider": body["provider"], "model": body["model"],
                                     "token_usage": body.get("token_usage")})
        # gzip on the wire: the client must get the bytes as sent, the recording the decoded JSON.
        payload = gzip.compress(b'{"success": true, "audit_id": "aud-%s"}' % body["context_id"].encode())
        return web.Response(body=payload, content_type="application/json", headers={"Content-Encoding": "gzip"})

    async def check_input(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.record(request)
        if (refused := self._refused(request)) is not None:
            return refused
        if (bad := check_input_refused(body)) is not None:
            return bad
        # platform/agent/mcp_handler.go, mcpCheckInputHandler: a static-policy block is 403 with
        # {allowed: false, block_reason, policies_evaluated, decision_id}; an allow is 200 with
        # {allowed: true, policies_evaluated, decision_id}.
        decision = str(uuid.uuid4())
        if "DROP TABLE" in body["statement"].upper():
            return web.json_response({"allowed": False, "block_reason": "SQL injection detected: drop_table",
                                      "policies_evaluated": 12, "decision_id": decision}, status=403)
        return web.json_response({"allowed": True, "policies_evaluated": 12, "decision_id": decision,
                                  "redaction_evaluated": True})

    async def check_output(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.record(request)
        if (refused := self._refused(request)) is not None:
            return refused
        if (bad := check_output_refused(body)) is not None:
            return bad
        return web.json_response({"allowed": True, "policies_evaluated": 9, "decision_id": str(uuid.uuid4())})

    async def decide(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.record(request)
        if (bad := decide_refused(body)) is not None:
            return bad
        # The SDK's axonflow/types.py DecideResponse: trace_id is the caller's traceparent trace id when
        # sent (a fresh one otherwise).
        tp = request.headers.get("traceparent", "")
        trace = tp.split("-")[1] if tp.count("-") == 3 else uuid.uuid4().hex
        deny = "rm -rf" in body["query"]
        return web.json_response({"verdict": "deny" if deny else "allow", "decision_id": str(uuid.uuid4()),
                                  "trace_id": trace, "reasons": ["dangerous command"] if deny else [],
                                  "obligations": [], "evaluated_policies": ["sys_dangerous_cmd"],
                                  "stage": body["stage"]})

    async def audit_search(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.record(request)
        if basic_client_id(request.headers.get("Authorization")) is None or (refused := self._refused(request)):
            return refused or web.json_response({"error": "Invalid credentials"}, status=401)
        # platform/orchestrator/run.go auditSearchHandler + audit_logger.go SearchAuditLogs:
        # timestamp >= start_time AND timestamp <= end_time, ORDER BY timestamp DESC, LIMIT limit
        # (default 100); the handler decodes no offset (an SDK's "offset" is ignored); the answer is
        # the JSON list of entries.
        if not self.search_applies_criteria:
            return web.json_response(self.audit_trail)
        start = datetime.fromisoformat(body["start_time"]) if body.get("start_time") else None
        end = datetime.fromisoformat(body["end_time"]) if body.get("end_time") else None
        rows = [e for e in self.audit_trail if (start is None or datetime.fromisoformat(e["timestamp"]) >= start)
                and (end is None or datetime.fromisoformat(e["timestamp"]) <= end)]
        rows.sort(key=lambda e: e["timestamp"], reverse=True)
        return web.json_response(rows[:int(body.get("limit") or 100)])

    async def proxy_request(self, request: web.Request) -> web.Response:
        body = await request.json()
        await self.record(request)
        if (refused := self._refused(request)) is not None:
            return refused
        # Proxy mode: platform/agent/run.go clientRequestHandler -> the orchestrator's
        # processRequestHandler (run.go), which calls the LLM itself and then
        # auditLogger.LogSuccessfulRequest (audit_logger.go): provider, model, response_time_ms,
        # tokens_used (a total) and cost from the router's ProviderInfo, policy_decision "allowed".
        self.n += 1
        model = (body.get("context") or {}).get("model", "gpt-4o")
        self._audit_row(request, id=f"audit_{self.n}", request_id=f"req-{self.n}", request_type=body["request_type"],
                        query=body["query"], policy_decision="allowed", provider="openai", model=model,
                        response_time_ms=420, tokens_used=1200, cost=0.0042)
        # The SDK's ClientResponse (axonflow/types.py).
        return web.json_response({"success": True, "data": {"answer": "hi"}, "blocked": False, "metadata": {}})

    async def health(self, request: web.Request) -> web.Response:
        await self.record(request)
        return web.json_response({"status": "healthy", "version": "9.0.0"})

    async def stream(self, request: web.Request) -> web.StreamResponse:
        body = await self.record(request)
        resp = web.StreamResponse(headers={"Content-Type": "text/event-stream", "X-Upstream": "yes"})
        await resp.prepare(request)
        for i in range(5):
            await resp.write(f"data: chunk {i} of {len(body)}\n\n".encode())
            await asyncio.sleep(0.01)
        await resp.write_eof()
        return resp

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/policy/pre-check", self.precheck)
        app.router.add_post("/api/audit/llm-call", self.audit)
        app.router.add_post("/api/v1/mcp/check-input", self.check_input)
        app.router.add_post("/api/v1/mcp/check-output", self.check_output)
        app.router.add_post("/api/v1/decide", self.decide)
        app.router.add_post("/api/v1/audit/search", self.audit_search)
        app.router.add_post("/api/request", self.proxy_request)
        app.router.add_get("/health", self.health)
        app.router.add_post("/api/v1/stream", self.stream)
        return app
