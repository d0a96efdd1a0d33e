"""AxonFlow Gateway Mode wire formats (snake_case). See shared/reference/wire-formats.md, section 5."""

from __future__ import annotations

import json
import time
import uuid
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import Field

from gateledger.contracts.wire.base import IdStr, UtcTime, WireModel
from gateledger.correlation import trace_id_from_traceparent


class PreCheckRequest(WireModel):
    """``POST /api/policy/pre-check`` request body."""

    user_token: str | None = None
    client_id: str
    query: str
    data_sources: list[str] | None = None
    context: dict[str, Any] | None = None


class RateLimit(WireModel):
    limit: int | None = None
    remaining: int | None = None
    reset_at: UtcTime | None = None


class BudgetInfo(WireModel):
    budget_id: str | None = None
    budget_name: str | None = None
    used_usd: float | str | None = None
    limit_usd: float | str | None = None
    percentage: float | None = None
    exceeded: bool | None = None
    action: str | None = None


class PreCheckResponse(WireModel):
    """``POST /api/policy/pre-check`` response body."""

    context_id: str | None = None
    approved: bool | None = None
    requires_redaction: bool | None = None
    approved_data: Any = None
    policies: list[str] | None = None
    rate_limit: RateLimit | None = None
    budget_info: BudgetInfo | None = None
    expires_at: UtcTime | None = None
    block_reason: str | None = None
    trace_id: str | None = None


class TokenUsage(WireModel):
    prompt_tokens: int | None = Field(default=None, ge=0)
    completion_tokens: int | None = Field(default=None, ge=0)
    total_tokens: int | None = Field(default=None, ge=0)


class LlmCallAuditRequest(WireModel):
    """``POST /api/audit/llm-call`` request body."""

    context_id: str
    provider: str
    model: str
    client_id: str | None = None
    response_summary: str | None = None
    token_usage: TokenUsage | None = None
    latency_ms: int | None = Field(default=None, ge=0)
    metadata: dict[str, Any] | None = None


class LlmCallAuditResponse(WireModel):
    """``POST /api/audit/llm-call`` response body."""

    success: bool | None = None
    audit_id: str | None = None
    error: str | None = None


class AxonFlowExchange(WireModel):
    """What the AxonFlow tap records for one proxied call: request, response and HTTP facts.

    This is gateledger's own shape (AxonFlow has no such record); the request and response
    inside keep AxonFlow's exact field names.
    """

    path: str
    method: str = "POST"
    status: int
    request: dict[str, Any]
    response: dict[str, Any] | None = None
    started_at: UtcTime
    finished_at: UtcTime
    tenant_header: str | None = None
    traceparent: str | None = None  # the caller's W3C trace context header, as sent
    budget_warning: str | None = None  # AxonFlow's X-Budget-Warning answer header

    def trace_id(self) -> str | None:
        """The trace id of the caller's ``traceparent`` (AxonFlow's correlation id), if valid."""
        return trace_id_from_traceparent(self.traceparent)



class DecideRequest(WireModel):
    """``POST /api/v1/decide`` request (the SDK's axonflow/types.py DecideRequest mirrors the platform's)."""

    stage: str | None = None
    query: str | None = None
    caller_identity: dict[str, Any] | None = None
    target: dict[str, Any] | None = None
    user_token: str | None = None
    context: dict[str, Any] | None = None


class DecideResponse(WireModel):
    """``POST /api/v1/decide`` verdict (``allow`` / ``deny`` / ``needs_approval``)."""

    verdict: str | None = None
    decision_id: str | None = None
    trace_id: str | None = None
    reasons: list[str] | None = None
    evaluated_policies: list[str] | None = None
    stage: str | None = None
    expires_at: UtcTime | None = None
    error: str | None = None


class McpCheckRequest(WireModel):
    """``POST /api/v1/mcp/check-input`` / ``check-output`` request.

    getaxonflow/axonflow platform/agent/mcp_handler.go, MCPCheckInputRequest /
    MCPCheckOutputRequest: ``connector_type`` (required; the MCP server), ``tool`` (newer PEPs),
    ``statement`` (input) or ``response_data`` / ``message`` (output).
    """

    connector_type: str
    tool: str | None = None
    statement: str | None = None
    operation: str | None = None
    parameters: dict[str, Any] | None = None
    client_id: str | None = None
    tenant_id: str | None = None
    user_id: str | None = None
    user_token: str | None = None


class McpCheckResponse(WireModel):
    """``check-input`` / ``check-output`` answer: ``allowed`` (403 with ``allowed: false`` when blocked)."""

    allowed: bool | None = None
    block_reason: str | None = None
    policies_evaluated: int | None = None
    decision_id: str | None = None
    redacted: bool | None = None
    error: str | None = None


class AuditLogEntry(WireModel):
    """One row of AxonFlow's audit trail (``POST /api/v1/audit/search``).

    getaxonflow/axonflow platform/orchestrator/audit_logger.go (``AuditEntry``; SearchAuditLogs
    selects provider, model, response_time_ms, tokens_used, cost); the SDK's axonflow/types.py
    AuditLogEntry (9.x: ``response_time_ms``; its ``latency_ms`` is never sent). Two kinds matter here:

    - an LLM call AxonFlow's orchestrator made (proxy mode, run.go processRequestHandler ->
      ``LogSuccessfulRequest`` / ``LogFailedRequest``): provider, model, ``tokens_used`` (a total:
      the trail has no prompt/completion split) and ``cost`` (AxonFlow's own float estimate);
    - a gateway pre-check verdict (platform/agent/gateway_handlers.go recordGatewayPreCheckAudit ->
      decision_handler.go writeDecisionAuditLog, #2642): ``plane: "gateway"``, ``request_type``
      ``decision_<stage>``, the pre-check's context id as ``request_id``, no provider or tokens.
      The LLM call the pre-check cleared is audited in ``llm_call_audits`` (audit_queue.go,
      AuditTypeLLMCallAudit), which the audit search does not read.
    """

    id: IdStr
    request_id: str | None = None
    timestamp: UtcTime
    client_id: str | None = None
    tenant_id: str | None = None
    user_email: str | None = None
    request_type: str | None = None
    policy_decision: str | None = None
    provider: str | None = None
    model: str | None = None
    tokens_used: int | None = Field(default=None, ge=0)
    response_time_ms: int | None = Field(default=None, ge=0)  # audit_logger.go AuditEntry.ResponseTime
    latency_ms: int | None = Field(default=None, ge=0)  # older SDKs' name for it (types.py AuditLogEntry)
    cost: float | None = None  # AxonFlow's estimate in USD (audit_logs.cost DECIMAL(10, 6)); kept, not billed
    error_message: str | None = None
    plane: str | None = None  # gateway | decision | ... (#2592 plane column)

    def is_llm_call(self) -> bool:
        """A row of an LLM call AxonFlow logged (a provider and a model), not a verdict."""
        return bool(self.provider and self.model)

    def is_gateway_precheck(self) -> bool:
        """A gateway pre-check verdict row (writeDecisionAuditLog with plane gateway)."""
        return self.plane == "gateway"

    def blocked(self) -> bool:
        """AxonFlow refused it: no LLM call followed (past-tense vocabulary #2638, and the legacy 'deny')."""
        return (self.policy_decision or "").lower() in ("blocked", "deny", "denied")


# --- AxonFlow's own answer to a budget-blocked pre-check, byte for byte -------------------------
#
# getaxonflow/axonflow platform/agent/gateway_handlers.go (handlePolicyPreCheck, issue #1082): a
# budget block is `w.WriteHeader(http.StatusPaymentRequired)` then `json.NewEncoder(w).Encode(
# PreCheckResponse{ContextID: uuid.New().String(), Approved: false, Policies: ["budget_exceeded"],
# BlockReason: budgetDecision.Message, BudgetInfo: budgetInfo, ExpiresAt: time.Now()})`. The
# struct's field order and `omitempty` tags decide the bytes; `BudgetInfo` holds float64 amounts.

BUDGET_BLOCK_STATUS = 402
BUDGET_EXCEEDED_POLICY = "budget_exceeded"


def go_float(value: float) -> str:
    """A float64 as Go's encoding/json writes it ('f' form in [1e-6, 1e21), else 'e' with e-7 not e-07)."""
    magnitude = abs(value)
    if magnitude != 0 and (magnitude < 1e-6 or magnitude >= 1e21):
        text = repr(value)
        if len(text) >= 4 and text[-4] == "e" and text[-3] == "-" and text[-2] == "0":
            text = text[:-2] + text[-1]
        return text
    text = format(Decimal(repr(value)), "f")
    return text.rstrip("0").rstrip(".") if "." in text else text


def go_time(ns_since_epoch: int) -> str:
    """A UTC time.Time as Go marshals it (RFC 3339 with nanoseconds, trailing zeros trimmed)."""
    seconds, ns = divmod(ns_since_epoch, 1_000_000_000)
    text = datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")
    fraction = f"{ns:09d}".rstrip("0")
    return f"{text}.{fraction}Z" if fraction else f"{text}Z"


class GoFloat(float):
    """A number go_json writes in Go's float64 form (an int stays an int)."""


def _go_value(value: Any) -> str:
    if value is None:
        return "null"
    if value is True:
        return "true"
    if value is False:
        return "false"
    if isinstance(value, GoFloat):
        return go_float(float(value))
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return go_float(value)
    if isinstance(value, str):
        # Go escapes <, >, & and the JS line separators by default (SetEscapeHTML(true)).
        text = json.dumps(value, ensure_ascii=False)
        for raw, esc in (("<", "\\u003c"), (">", "\\u003e"), ("&", "\\u0026"), ("\u2028", "\\u2028"),
                         ("\u2029", "\\u2029")):
            text = text.replace(raw, esc)
        return text
    if isinstance(value, dict):
        return "{" + ",".join(f"{_go_value(str(k))}:{_go_value(v)}" for k, v in value.items()) + "}"
    if isinstance(value, list | tuple):
        return "[" + ",".join(_go_value(v) for v in value) + "]"
    raise TypeError(f"go_json cannot encode {type(value).__name__}")


def go_json(value: Any) -> bytes:
    """``value`` as Go's json.Encoder.Encode writes it: compact, keys in the given order, newline-terminated."""
    return (_go_value(value) + "\n").encode()


def budget_block_body(block_reason: str | None, budget_info: dict[str, Any] | None, *,
                      context_id: str | None = None, now_ns: int | None = None) -> dict[str, Any]:
    """AxonFlow's PreCheckResponse for a budget block, fields in its struct order (omitempty honoured)."""
    body: dict[str, Any] = {
        "context_id": context_id or str(uuid.uuid4()),
        "approved": False,
        "policies": [BUDGET_EXCEEDED_POLICY],
    }
    if budget_info is not None:
        body["budget_info"] = budget_info
    body["expires_at"] = go_time(time.time_ns() if now_ns is None else now_ns)
    if block_reason:
        body["block_reason"] = block_reason
    return body
