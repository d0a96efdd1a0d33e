"""AxonFlow's newer gates -> ``PolicyDecision`` (``/api/v1/decide``, the MCP checks); audit-trail reconciliation.

The MCP checks answer ``{allowed, block_reason, decision_id, ...}``, with HTTP 403 when blocked
(getaxonflow/axonflow platform/agent/mcp_handler.go, mcpCheckInputHandler / mcpCheckOutputHandler);
``/decide`` answers ``{verdict: allow|deny|needs_approval, decision_id, trace_id, reasons,
evaluated_policies}`` (the SDK's axonflow/types.py DecideResponse mirrors the platform's). AxonFlow
joins the check-input, the check-output and any /decide stage of one tool call on the caller's W3C
``traceparent`` (mcp_handler.go, #2598): that trace id is the envelope's ``trace_id``, and the
correlate stage joins the MCP call carrying the same trace to these verdicts.
"""

from __future__ import annotations

from pydantic import ValidationError

from gateledger import findings
from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import PolicyDecision
from gateledger.contracts.wire import (
    AuditLogEntry,
    AxonFlowExchange,
    DecideRequest,
    DecideResponse,
    McpCheckRequest,
    McpCheckResponse,
)
from gateledger.topics import EventType
from stream_processors.normalize.errors import schema_error

GATES = {"/api/v1/mcp/check-input": "mcp_check_input", "/api/v1/mcp/check-output": "mcp_check_output"}


def _decide(env: Envelope, ex: AxonFlowExchange) -> tuple[PolicyDecision, bool]:
    req = DecideRequest.model_validate(ex.request)
    resp = DecideResponse.model_validate(ex.response or {})
    target = req.target or {}
    ok = resp.verdict == "allow" if resp.verdict else 200 <= ex.status < 300
    server = target.get("server")
    row = _row(env, ex, gate="decide", approved=ok, decision_id=resp.decision_id,
               reason=None if ok else "; ".join(resp.reasons or []) or resp.error or resp.verdict,
               policies=list(resp.evaluated_policies or []), tool=target.get("tool"),
               servers=[str(server)] if server else [])
    return row, bool(resp.verdict) or 200 <= ex.status < 300


def _check(env: Envelope, ex: AxonFlowExchange) -> tuple[PolicyDecision, bool]:
    req = McpCheckRequest.model_validate(ex.request)
    resp = McpCheckResponse.model_validate(ex.response or {})
    ok = resp.allowed if resp.allowed is not None else 200 <= ex.status < 300
    row = _row(env, ex, gate=GATES.get(ex.path, "mcp_check_input"), approved=ok, decision_id=resp.decision_id,
               reason=None if ok else resp.block_reason or resp.error or f"HTTP {ex.status}", policies=[],
               tool=req.tool, servers=[req.connector_type], client=req.client_id)
    # A block answers 403 with a verdict (mcp_handler.go); any other error without one is no verdict.
    return row, resp.allowed is not None or 200 <= ex.status < 300 or ex.status == 403


def _row(env: Envelope, ex: AxonFlowExchange, *, gate: str, approved: bool, decision_id: str | None,
         reason: str | None, policies: list[str], tool: str | None, servers: list[str],
         client: str | None = None) -> PolicyDecision:
    return PolicyDecision(
        id=env.id, version=1, tenant=env.tenant, time=env.time, source=env.source,
        request_id=env.request_id, trace_id=env.trace_id, client_id=client, user_id=env.subject,
        approved=bool(approved), block_reason=reason, policies=policies, http_status=ex.status,
        mcp_servers=servers, gate=gate, decision_id=decision_id, tool_name=tool,
        budget_warning=ex.budget_warning, event_ids=[env.id],
    )


def decision_from_governance(env: Envelope) -> tuple[PolicyDecision, bool]:
    """A PolicyDecision from an ``axonflow.decide`` or ``axonflow.mcp_check`` envelope, and whether
    AxonFlow gave a verdict at all.

    An exchange AxonFlow answered with an error and no verdict (401, 5xx: not the 403 of a block,
    mcp_handler.go) is recorded as what it was, not approved, but it is no block: a tool call that
    runs after it is no bypass."""
    try:
        ex = AxonFlowExchange.model_validate(env.data)
        return _decide(env, ex) if env.type == EventType.AXONFLOW_DECIDE else _check(env, ex)
    except ValidationError as exc:
        raise schema_error("AxonFlow governance exchange", exc) from None


def parse_entry(env: Envelope) -> AuditLogEntry:
    """The AxonFlow audit-trail row of an ``axonflow.audit_entry`` envelope."""
    try:
        return AuditLogEntry.model_validate(env.data)
    except ValidationError as exc:
        raise schema_error("AxonFlow audit entry", exc) from None
