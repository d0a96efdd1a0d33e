"""AxonFlow's wire formats (pre-check, LLM-call audit, governance verdicts, its own audit trail) as envelopes.

Field meanings are AxonFlow's: see gateledger/contracts/wire/axonflow.py and shared/reference/wire-formats.md.
"""

from __future__ import annotations

from typing import Any

from gateledger.contracts.envelope import Envelope
from gateledger.contracts.wire import (
    AuditLogEntry,
    AxonFlowExchange,
    DecideRequest,
    DecideResponse,
    LlmCallAuditRequest,
    LlmCallAuditResponse,
    McpCheckRequest,
    PreCheckRequest,
    PreCheckResponse,
)
from gateledger.correlation import context_keys
from gateledger.ids import event_id
from gateledger.topics import EventType, Format, Topic
from producers.accept import FormatFn, IngestContext, InvalidRecord, Published, validate



def _exchange(record: Any, ctx: IngestContext, path: str) -> AxonFlowExchange:
    """An AxonFlow exchange: the tap's recording, or a bare {request, response} pair from a file."""
    if not isinstance(record, dict):
        raise InvalidRecord("schema", f"expected a JSON object, got {type(record).__name__}")
    if "request" not in record:
        raise InvalidRecord("schema", "an AxonFlow record needs 'request' (and usually 'response')")
    data = dict(record)
    data.setdefault("path", path)
    data.setdefault("status", 200)
    data.setdefault("started_at", ctx.received_at)
    data.setdefault("finished_at", data["started_at"])
    return validate(AxonFlowExchange, data)


def _axon_tenant(ctx: IngestContext, exchange: AxonFlowExchange, context: dict[str, Any] | None) -> str:
    tenant = exchange.tenant_header or ctx.tenant_header
    if not tenant and isinstance(context, dict) and context.get("tenant_id"):
        tenant = str(context["tenant_id"])
    tenant = tenant or ctx.tenant
    if ctx.tenant_locked and tenant != ctx.tenant:
        raise InvalidRecord("tenant_mismatch", f"record names tenant {tenant!r}; the caller's token is for {ctx.tenant!r}")
    return tenant


def axonflow_precheck(record: Any, ctx: IngestContext) -> Published:
    """AxonFlow ``POST /api/policy/pre-check`` request with its response."""
    ex = _exchange(record, ctx, "/api/policy/pre-check")
    req = validate(PreCheckRequest, ex.request)
    resp = validate(PreCheckResponse, ex.response or {})
    tenant = _axon_tenant(ctx, ex, req.context)
    source = f"axonflow/{tenant}"
    request_id, trace_id = context_keys(req.context)
    env = Envelope(
        # context_id is AxonFlow's id for the pre-check; without one (errors) the exchange itself.
        id=event_id(source, EventType.AXONFLOW_PRECHECK, resp.context_id, ex.model_dump(mode="json"),
                    tenant=tenant),
        source=source,
        type=EventType.AXONFLOW_PRECHECK,
        time=ex.started_at,
        received_at=ctx.received_at,
        tenant=tenant,
        subject=None,
        request_id=request_id,
        context_id=resp.context_id,
        trace_id=trace_id or ex.trace_id() or resp.trace_id,
        data=ctx.masker.mask(ex.wire_dict()),
    )
    return Published(env, Topic.RAW_AXONFLOW, resp.context_id or env.id)


def axonflow_llm_call(record: Any, ctx: IngestContext) -> Published:
    """AxonFlow ``POST /api/audit/llm-call`` request with its response."""
    ex = _exchange(record, ctx, "/api/audit/llm-call")
    req = validate(LlmCallAuditRequest, ex.request)
    resp = validate(LlmCallAuditResponse, ex.response or {})
    tenant = _axon_tenant(ctx, ex, None)
    source = f"axonflow/{tenant}"
    # One audit per context_id: a retried audit of the same call collapses onto the same id.
    env = Envelope(
        id=event_id(source, EventType.AXONFLOW_LLM_AUDIT, req.context_id, tenant=tenant),
        source=source,
        type=EventType.AXONFLOW_LLM_AUDIT,
        time=ex.started_at,
        received_at=ctx.received_at,
        tenant=tenant,
        context_id=req.context_id,
        trace_id=ex.trace_id(),
        data=ctx.masker.mask(ex.wire_dict() | {"audit_id": resp.audit_id}),
    )
    return Published(env, Topic.RAW_AXONFLOW, req.context_id)


def axonflow_governance(record: Any, ctx: IngestContext) -> Published:
    """AxonFlow ``POST /api/v1/decide`` or ``/api/v1/mcp/check-input|check-output`` with its verdict."""
    ex = _exchange(record, ctx, "/api/v1/decide")
    if ex.path == "/api/v1/decide":
        etype, req_ctx = EventType.AXONFLOW_DECIDE, validate(DecideRequest, ex.request).context
        answer_trace = validate(DecideResponse, ex.response or {}).trace_id
        subject = None
    elif ex.path in ("/api/v1/mcp/check-input", "/api/v1/mcp/check-output"):
        check = validate(McpCheckRequest, ex.request)
        etype, req_ctx, answer_trace, subject = EventType.AXONFLOW_MCP_CHECK, None, None, check.user_id
    else:
        raise InvalidRecord("schema", f"not an AxonFlow governance path: {ex.path!r}")
    decision_id = (ex.response or {}).get("decision_id")
    tenant = _axon_tenant(ctx, ex, req_ctx)
    source = f"axonflow/{tenant}"
    request_id, trace_id = context_keys(req_ctx)
    env = Envelope(
        # AxonFlow's decision_id names the verdict; without one (errors) the exchange itself.
        id=event_id(source, etype, decision_id, ex.model_dump(mode="json"), tenant=tenant),
        source=source,
        type=etype,
        time=ex.started_at,
        received_at=ctx.received_at,
        tenant=tenant,
        subject=subject,
        request_id=request_id,
        trace_id=trace_id or ex.trace_id() or answer_trace,
        data=ctx.masker.mask(ex.wire_dict()),
    )
    return Published(env, Topic.RAW_AXONFLOW, env.trace_id or env.id)


def axonflow_audit_entry(record: Any, ctx: IngestContext) -> Published:
    """A row of AxonFlow's own audit trail, as ``POST /api/v1/audit/search`` lists it."""
    entry = validate(AuditLogEntry, record)
    tenant = ctx.tenant if ctx.tenant_locked else (entry.tenant_id or ctx.tenant)
    source = f"axonflow/{tenant}/audit"
    env = Envelope(
        id=event_id(source, EventType.AXONFLOW_AUDIT_ENTRY, entry.id, tenant=tenant),
        source=source,
        type=EventType.AXONFLOW_AUDIT_ENTRY,
        time=entry.timestamp,
        received_at=ctx.received_at,
        tenant=tenant,
        # Gateway rows name the pre-check's context: keyed by it, beside the tap's exchanges.
        context_id=entry.request_id,
        data=ctx.masker.mask(entry.wire_dict()),
    )
    return Published(env, Topic.RAW_AXONFLOW, entry.request_id or env.id)


FORMATS: dict[Format, FormatFn] = {
    Format.AXONFLOW_PRECHECK: axonflow_precheck,
    Format.AXONFLOW_LLM_CALL: axonflow_llm_call,
    Format.AXONFLOW_GOVERNANCE: axonflow_governance,
    Format.AXONFLOW_AUDIT_ENTRY: axonflow_audit_entry,
}
