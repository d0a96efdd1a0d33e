"""Interactions in the upstream wire formats, through the producers' format code (as ingest publishes them).

Each builder returns ``Published`` envelopes with explicit event and receive times, so a test
controls event time exactly (received_at = event time + a small delay unless told otherwise).
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from gateledger.contracts.envelope import utc_iso
from producers.formats import Published
from tests.stream_processors.harness import envelope

T0 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
DELAY = timedelta(milliseconds=200)


def _iso(ts: datetime) -> str:
    return utc_iso(ts)


@dataclass
class Spec:
    """What one generated interaction contains."""

    n: int
    t0: datetime
    tenant: str = "acme"
    blocked: bool = False
    audit: bool = True
    tools: int = 2
    halves: bool = True  # MCP calls as request + response halves (else whole records)
    reject_tool: int | None = None  # index of the tool call a webhook filter rejects
    reject_ran: bool = False  # the rejected call ran anyway (a bypass)
    zero_tokens: bool = False
    filter_decision: str | None = None  # also a gateledger webhook-filter record with this decision
    expires_in_s: float = 300.0  # the pre-check's expires_at, after its time
    trail: bool = False  # AxonFlow's own audit trail logs the audit too (the audit poller's row)
    checks: bool = False  # tool calls governed by AxonFlow's /decide and MCP checks, joined on the trace only
    check_block: bool = False  # check-input refuses the first tool call, which runs anyway (a bypass)
    prompt_tokens: int = 1000
    completion_tokens: int = 200
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def request_id(self) -> str:
        return f"req-{self.n}"

    @property
    def context_id(self) -> str:
        return f"ctx-{self.n}"

    @property
    def trace_id(self) -> str:
        return f"{self.n:032x}"


def precheck(spec: Spec, at: datetime, received: datetime | None = None) -> Published:
    return envelope("axonflow-precheck", precheck_record(spec, at), tenant=spec.tenant,
                    received_at=received or at + DELAY)


def precheck_record(spec: Spec, at: datetime) -> dict[str, Any]:
    """The AxonFlow tap's recording of one pre-check exchange."""
    approved = not spec.blocked
    rec = {
        "path": "/api/policy/pre-check", "status": 200,
        "started_at": _iso(at), "finished_at": _iso(at + timedelta(milliseconds=15)),
        "tenant_header": spec.tenant,
        "request": {"user_token": f"utok-{spec.n}-secret", "client_id": "support-bot", "query": "status of 42?",
                    "context": {"request_id": spec.request_id,
                                "traceparent": f"00-{spec.trace_id}-00f067aa0ba902b7-01",
                                "mcp_servers": ["github"], "user_id": f"user-{spec.n % 7}"}},
        "response": {"context_id": spec.context_id, "approved": approved, "requires_redaction": False,
                     "policies": ["pii_detection"] + ([] if approved else ["prompt_injection"]),
                     "expires_at": _iso(at + timedelta(seconds=spec.expires_in_s)),
                     "block_reason": None if approved else "Prompt injection pattern detected"},
    }
    return rec


def audit(spec: Spec, at: datetime, received: datetime | None = None, context_id: str | None = None) -> Published:
    return envelope("axonflow-llm-call", audit_record(spec, at, context_id), tenant=spec.tenant,
                    received_at=received or at + DELAY)


def audit_record(spec: Spec, at: datetime, context_id: str | None = None) -> dict[str, Any]:
    """The AxonFlow tap's recording of one LLM-call audit exchange."""
    tokens = {"prompt_tokens": 0, "completion_tokens": 0, "total_tokens": 0} if spec.zero_tokens else {
        "prompt_tokens": spec.prompt_tokens, "completion_tokens": spec.completion_tokens,
        "total_tokens": spec.prompt_tokens + spec.completion_tokens}
    rec = {
        "path": "/api/audit/llm-call", "status": 200,
        "started_at": _iso(at), "finished_at": _iso(at + timedelta(milliseconds=5)),
        "tenant_header": spec.tenant,
        "request": {"context_id": context_id or spec.context_id, "client_id": "support-bot", "provider": "openai",
                    "model": "gpt-4o", "token_usage": tokens, "latency_ms": 900, "metadata": {}},
        "response": {"success": True, "audit_id": f"aud-{spec.n}"},
    }
    return rec


def _tool_records(spec: Spec, k: int, at: datetime) -> tuple[dict[str, Any], dict[str, Any] | None, dict[str, Any]]:
    """(request half, response half or None, whole record) of the k-th tool call."""
    rejected = spec.reject_tool == k
    ran = not rejected or spec.reject_ran
    session = f"sess-{spec.n}"
    rpc = k + 1
    tool = f"tool_{k % 3}"
    meta = {"traceparent": f"00-{spec.trace_id}-00f067aa0ba902b7-01"}
    if not spec.checks:  # an agent behind AxonFlow's MCP checks passes only the W3C trace on
        meta["request_id"] = spec.request_id
    body = {"jsonrpc": "2.0", "id": rpc, "method": "tools/call",
            "params": {"name": tool, "arguments": {"q": "x"}, "_meta": meta}}
    hooks = [{"type": "request", "method": "tools/call", "name": "dlp", "tool": tool,
              "status": "rejected" if rejected else "ok", "message": "blocked: PII" if rejected else ""}]
    common = {"subject": f"user-{spec.n % 7}", "metadata": {"mcpID": "ms-github", "mcpServerDisplayName": "GitHub",
                                                           "mcpServerCatalogEntryName": "github"},
              "clientName": "Cursor", "clientVersion": "1.7.2", "sessionID": session, "requestID": str(rpc)}
    request = common | {"createdAt": _iso(at), "callType": "tools/call", "callIdentifier": tool,
                        "requestBody": body, "webhookStatuses": hooks}
    if ran:
        response = common | {"createdAt": _iso(at + timedelta(milliseconds=80)), "callType": "",
                             "responseBody": {"jsonrpc": "2.0", "id": rpc, "result": {"content": []}},
                             "responseStatus": 200, "processingTimeMs": 80, "responseReceived": True}
        whole = request | {k2: v for k2, v in response.items() if k2 not in ("createdAt", "callType")}
    else:
        response = common | {"createdAt": _iso(at + timedelta(milliseconds=5)), "callType": "",
                             "responseStatus": 403, "error": "MCP request blocked by hook: dlp",
                             "processingTimeMs": 5}
        whole = request | {k2: v for k2, v in response.items() if k2 not in ("createdAt", "callType")}
    return request, response, whole


def audit_trail_record(spec: Spec, at: datetime, context_id: str | None = None) -> dict[str, Any]:
    """A row of AxonFlow's own audit trail for an LLM call, as ``POST /api/v1/audit/search`` lists it
    (audit_logger.go columns; gateway rows carry the pre-check's context id as ``request_id``)."""
    ctx = context_id or spec.context_id
    return {"id": f"trail-{ctx}", "request_id": ctx, "timestamp": _iso(at), "client_id": "support-bot",
            "tenant_id": spec.tenant, "request_type": "llm_chat", "policy_decision": "allowed",
            "provider": "openai", "model": "gpt-4o", "tokens_used": spec.prompt_tokens + spec.completion_tokens}


def governance_record(spec: Spec, path: str, at: datetime, tool: str, allowed: bool = True) -> dict[str, Any]:
    """The tap's recording of AxonFlow's ``/api/v1/decide`` or MCP ``check-input`` / ``check-output``.

    Shapes from getaxonflow/axonflow platform/agent/mcp_handler.go (a check-input block is HTTP 403
    with ``allowed: false``) and the SDK's axonflow/types.py DecideRequest / DecideResponse; AxonFlow
    joins the stages of one tool call on the caller's ``traceparent``.
    """
    k = {"/api/v1/decide": "d", "/api/v1/mcp/check-input": "i", "/api/v1/mcp/check-output": "o"}[path]
    decision = f"dec-{spec.n}-{tool}-{k}"
    if path == "/api/v1/decide":
        request: dict[str, Any] = {"stage": "tool", "query": "search issues",
                                   "target": {"type": "tool", "server": "github", "tool": tool}}
        response: dict[str, Any] = {"verdict": "allow" if allowed else "deny", "decision_id": decision,
                                    "reasons": [] if allowed else ["tool not allowed"]}
    else:
        request = {"connector_type": "github", "tool": tool, "statement": "list open issues"}
        response = {"allowed": allowed, "decision_id": decision, "policies_evaluated": 3,
                    "block_reason": None if allowed else "SQL injection detected"}
    return {"path": path, "status": 200 if allowed else 403, "started_at": _iso(at),
            "finished_at": _iso(at + timedelta(milliseconds=4)), "tenant_header": spec.tenant,
            "traceparent": f"00-{spec.trace_id}-b7ad6b7169203331-01", "request": request, "response": response}


def _governed_records(spec: Spec) -> list[tuple[datetime, str, dict[str, Any], datetime]]:
    """Tool calls an agent runs behind AxonFlow's governance: /decide, check-input, the call, check-output."""
    out = []
    for k in range(max(spec.tools, 1)):
        tk = spec.t0 + timedelta(seconds=2 + k)
        tool = f"tool_{k % 3}"
        blocked = spec.check_block and k == 0
        out.append((tk - timedelta(milliseconds=30), "axonflow-governance",
                    governance_record(spec, "/api/v1/decide", tk - timedelta(milliseconds=30), tool), tk))
        out.append((tk - timedelta(milliseconds=20), "axonflow-governance",
                    governance_record(spec, "/api/v1/mcp/check-input", tk - timedelta(milliseconds=20), tool,
                                      allowed=not blocked), tk))
        _req, _resp, whole = _tool_records(spec, k, tk)
        out.append((tk, "obot-audit", whole, tk + DELAY))
        to = tk + timedelta(milliseconds=200)
        out.append((to, "axonflow-governance", governance_record(spec, "/api/v1/mcp/check-output", to, tool),
                    to + DELAY))
    return out


def records(spec: Spec) -> list[tuple[datetime, str, dict[str, Any], datetime]]:
    """The upstream records of one interaction: (event time, format, record, received at)."""
    if spec.checks:
        return _governed_records(spec)
    t = spec.t0
    out = [(t, "axonflow-precheck", precheck_record(spec, t), t + DELAY)]
    if spec.audit:
        ta = t + timedelta(seconds=1)
        out.append((ta, "axonflow-llm-call", audit_record(spec, ta), ta + DELAY))
        if spec.trail:
            tt = ta + timedelta(milliseconds=300)
            out.append((tt, "axonflow-audit-entry", audit_trail_record(spec, tt), tt + DELAY))
    for k in range(spec.tools):
        tk = t + timedelta(seconds=2 + k)
        req, resp, whole = _tool_records(spec, k, tk)
        if spec.halves:
            out.append((tk, "obot-audit", req, tk + DELAY))
            out.append((tk + timedelta(milliseconds=80), "obot-audit", resp, tk + DELAY * 2))
        else:
            out.append((tk, "obot-audit", whole, tk + DELAY))
    if spec.filter_decision:
        tw = t + timedelta(seconds=2)
        k = spec.reject_tool or 0
        msg = {"jsonrpc": "2.0", "id": k + 1, "method": "tools/call",
               "params": {"name": f"tool_{k % 3}", "_meta": {"request_id": spec.request_id}},
               "_gateledger": {"decision": spec.filter_decision, "reason": "policy", "filter": "gl-filter"}}
        out.append((tw, "obot-webhook", msg, tw))
    return out


def housekeeping_record(tenant: str, n: int, at: datetime) -> dict[str, Any]:
    """Obot's whole record of a `tools/list` exchange: protocol housekeeping, never an interaction."""
    return {"subject": f"u-{tenant}", "metadata": {"mcpID": "ms-github"}, "sessionID": f"hk-{n}", "requestID": "0",
            "createdAt": _iso(at), "callType": "tools/list",
            "requestBody": {"jsonrpc": "2.0", "id": 0, "method": "tools/list"},
            "responseBody": {"jsonrpc": "2.0", "id": 0, "result": {"tools": []}}, "responseStatus": 200}


def interaction(spec: Spec) -> list[tuple[datetime, Published]]:
    """The events of one interaction with their event times (in event-time order)."""
    return [(t, envelope(fmt, rec, tenant=spec.tenant, received_at=rcv,
                         delivery_id=f"d-{spec.n}" if fmt == "obot-webhook" else None))
            for t, fmt, rec, rcv in records(spec)]


def mixed(count: int, seed: int, start: datetime = T0, spacing_s: float = 0.5, first_n: int = 0) -> list[Spec]:
    """A deterministic mix of interaction shapes (numbered from ``first_n``)."""
    rng = random.Random(seed)
    specs = []
    for i in range(count):
        n = first_n + i
        r = rng.random()
        specs.append(Spec(
            n=n, t0=start + timedelta(seconds=i * spacing_s),
            blocked=r < 0.08,
            audit=not (0.08 <= r < 0.12),
            tools=rng.choice([0, 1, 2, 3]),
            halves=rng.random() < 0.7,
            reject_tool=0 if 0.12 <= r < 0.2 else None,
            reject_ran=0.12 <= r < 0.14,
            zero_tokens=0.2 <= r < 0.23,
            prompt_tokens=rng.randint(10, 5000),
            completion_tokens=rng.randint(1, 800),
        ))
    return specs


def events_in_time_order(specs: list[Spec]) -> list[Published]:
    """All events of the specs, sorted by event time (ties by envelope id)."""
    evs = [e for s in specs for e in interaction(s)]
    evs.sort(key=lambda te: (te[0], te[1].envelope.id))
    return [p for _, p in evs]
