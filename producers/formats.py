"""Each upstream wire format, turned into canonical envelopes for its raw topic.

A format validates one upstream record (its exact wire shape), derives the deterministic event id,
event time, tenant and correlation keys, masks secrets and PII, and says which topic and Kafka key
the envelope goes to. Every HTTP endpoint, poller and the ``gateledger ingest`` command go through
here, so a record means the same thing whichever way it arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import TypeAdapter, ValidationError

from gateledger.clock import utcnow
from gateledger.contracts.envelope import Envelope, EventType, utc_iso
from gateledger.contracts.wire import (
    AuditLogEntry,
    AxonFlowExchange,
    CloudEvent,
    DecideRequest,
    DecideResponse,
    JsonRpcMessage,
    LlmCallAuditRequest,
    LlmCallAuditResponse,
    McpCheckRequest,
    ObotAuditLogEvent,
    ObotLlmAuditLog,
    ObotMcpAuditRecord,
    ObotShimAuditRecord,
    PreCheckRequest,
    PreCheckResponse,
)
from gateledger.contracts.wire.base import UtcTime
from gateledger.correlation import context_keys, mcp_message_keys, trace_id_from_traceparent
from gateledger.ids import event_id, tenant_id
from gateledger.masking import Masker
from gateledger.topics import Topic
from producers.event_time import configured_skew, future_time_error


_DELIVERED: TypeAdapter[datetime] = TypeAdapter(UtcTime)


class InvalidRecord(ValueError):
    """A record that is not valid in its declared format. ``reason`` is a short code for dead letters."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class IngestContext:
    """What the receiving side knows beyond the record itself."""

    masker: Masker
    tenant: str = "default"
    install: str = "default"  # names the upstream installation in ``source``
    received_at: datetime = field(default_factory=utcnow)
    # Per delivery facts for formats without an upstream id (e.g. a webhook delivery's arrival).
    delivery_id: str | None = None
    # Tenant header sent by the caller (AxonFlow X-Tenant-ID), used when the record names none.
    tenant_header: str | None = None
    # The acting user when the transport names it (Obot's X-Obot-User-Id on webhook deliveries).
    subject: str | None = None
    # What gateledger itself knows or decided about the delivery (the webhook filter's verdict,
    # Obot's MCP server id header); recorded under ``data["_gateledger"]``.
    annotations: dict[str, Any] | None = None
    # True when the caller authenticated as ``tenant``: a record may not claim another tenant.
    tenant_locked: bool = False
    # How far after ``received_at`` an event may be dated (producers/event_time.py).
    max_future_skew: timedelta = field(default_factory=configured_skew)


@dataclass(frozen=True)
class Published:
    """An envelope with its destination."""

    envelope: Envelope
    topic: Topic
    key: str


FormatFn = Callable[[Any, IngestContext], Published]


def _validate(model: type, record: Any) -> Any:
    if not isinstance(record, dict):
        raise InvalidRecord("schema", f"expected a JSON object, got {type(record).__name__}")
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        errs = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidRecord("schema", f"not a valid {model.__name__}: {errs}") from None


def _key(*parts: str | None) -> str:
    return "|".join(p or "" for p in parts)


# --- Obot MCP audit (flat and shim variants) --------------------------------------------------


def obot_audit(record: Any, ctx: IngestContext) -> Published:
    """Obot flat MCP audit record, or the shim's variant with ``subject`` + ``metadata``."""
    if isinstance(record, dict) and ("subject" in record or "metadata" in record):
        flat = _validate(ObotShimAuditRecord, record).flattened()
    else:
        flat = _validate(ObotMcpAuditRecord, record)
    source = f"obot/{ctx.install}/mcp"
    # Obot row ids are unique within one install only, hence the install in the source.
    eid = event_id(source, EventType.OBOT_MCP_CALL, flat.id, record, tenant=ctx.tenant)
    request_id, trace_id = mcp_message_keys(flat.requestBody)
    mcp_id = flat.mcp_field("mcpID")
    env = Envelope(
        id=eid,
        source=source,
        type=EventType.OBOT_MCP_CALL,
        time=flat.createdAt or ctx.received_at,
        received_at=ctx.received_at,
        tenant=ctx.tenant,
        subject=flat.userID,
        request_id=request_id,
        trace_id=trace_id,
        session_id=flat.sessionID,
        data=ctx.masker.mask(flat.wire_dict()),
    )
    # Both halves of one exchange share this key, so they meet in one partition.
    return Published(env, Topic.RAW_OBOT_MCP, _key(mcp_id, flat.sessionID, flat.requestID))


def obot_audit_event(record: Any, ctx: IngestContext) -> Published:
    """Obot ``AuditLogEvent`` (v0.24+: list, detail or JSONL export), an MCP call or a local-agent tool call."""
    ev = _validate(ObotAuditLogEvent, record)
    source = f"obot/{ctx.install}/mcp"
    trace = ev.details.trace if ev.details else None
    request_body = ev.details.request.body if ev.details and ev.details.request else None
    request_id, trace_id = mcp_message_keys(request_body)
    ts = ev.timestamp
    occurred = (ts.occurredAt or ts.recordedAt) if ts else None
    local = ev.eventType == "local_agent_tool_call"
    if local:
        # occurredAt is client-reported (apiclient/types/auditlogevent.go): the envelope carries
        # Obot's recordedAt; the device's time stays in data.
        occurred = (ts.recordedAt or ts.occurredAt) if ts else None
    server = ev.target.parent.id if ev.target and ev.target.parent and ev.target.parent.id else None
    server = server or (ev.target.id if ev.target else None)
    session = trace.sessionID if trace else None
    env = Envelope(
        # Same id scheme as the flat record with the same Obot row id: an install whose API moved
        # from v0.23 to v0.24 does not count its history twice (local-agent rows share the id space).
        id=event_id(source, EventType.OBOT_MCP_CALL, ev.id, tenant=ctx.tenant),
        source=source,
        type=EventType.OBOT_LOCAL_AGENT_TOOL_CALL if local else EventType.OBOT_MCP_AUDIT_EVENT,
        time=occurred or ctx.received_at,
        received_at=ctx.received_at,
        tenant=ctx.tenant,
        subject=ev.actor.id if ev.actor else None,
        request_id=request_id,
        trace_id=trace_id,
        session_id=session,
        data=ctx.masker.mask(ev.wire_dict()),
    )
    if local:
        tool_use = trace.toolUseID if trace else None
        return Published(env, Topic.RAW_OBOT_MCP, _key(env.subject, session, tool_use or ev.id))
    return Published(env, Topic.RAW_OBOT_MCP, _key(server, session, trace.requestID if trace else ev.id))


# --- Obot LLM gateway -------------------------------------------------------------------------


def obot_llm(record: Any, ctx: IngestContext) -> Published:
    """Obot LLM gateway audit log record."""
    rec = _validate(ObotLlmAuditLog, record)
    source = f"obot/{ctx.install}/llm"
    env = Envelope(
        id=event_id(source, EventType.OBOT_LLM_CALL, rec.id, tenant=ctx.tenant),
        source=source,
        type=EventType.OBOT_LLM_CALL,
        time=rec.createdAt or ctx.received_at,
        received_at=ctx.received_at,
        tenant=ctx.tenant,
        subject=rec.userID,
        request_id=rec.requestID,
        session_id=rec.clientSessionID,
        data=ctx.masker.mask(rec.wire_dict()),
    )
    return Published(env, Topic.RAW_OBOT_LLM, rec.requestID or rec.id)


# --- Obot audit-log export ----------------------------------------------------------------------


def obot_export(record: Any, ctx: IngestContext) -> Published:
    """One line of an Obot audit-log export file, whichever kind the export is.

    obot-platform/obot pkg/controller/handlers/auditlogexport/auditlogexport.go writes JSONL: MCP
    exports as ``AuditLogEvent`` with details (``auditlog.Present``), LLM exports as
    ``LLMAuditLog`` (``ConvertLLMAuditLog``); exports made before v0.24 hold flat MCP records. Ids
    are Obot's row ids, so a re-ingested export maps onto the same event ids.
    """
    if isinstance(record, dict):
        if isinstance(record.get("timestamp"), dict) or "eventType" in record:
            return obot_audit_event(record, ctx)
        if any(k in record for k in ("modelProvider", "requestPath", "inputTokens")):
            return obot_llm(record, ctx)
        if "callType" in record or "mcpID" in record:
            return obot_audit(record, ctx)
    raise InvalidRecord("schema", "not an Obot audit-log export record (AuditLogEvent, LLMAuditLog or flat MCP)")


# --- Obot webhook filter ----------------------------------------------------------------------


def obot_webhook(record: Any, ctx: IngestContext) -> Published:
    """A JSON-RPC message POSTed to gateledger's webhook filter."""
    msg = _validate(JsonRpcMessage, record)
    source = f"obot/{ctx.install}/webhook"
    request_id, trace_id = mcp_message_keys(record)
    # A delivery has no upstream id: each delivery is its own decision. Replays of a recorded
    # message (no delivery id) hash the message alone, so re-ingesting a file is idempotent.
    eid = tenant_id(ctx.tenant, "webhook", source, record, ctx.delivery_id)
    data = ctx.masker.mask(msg.wire_dict())
    if ctx.annotations:
        # The processors read the verdict under this key (stream_processors/normalize/webhook.py).
        data["_gateledger"] = ctx.masker.mask(ctx.annotations)
    # The JSON-RPC body has no time: the delivery's is recorded next to the verdict, and a replay of
    # the recording (gateledger ingest) takes it back, so it joins the interactions the live run did.
    delivered = _delivered_at(record) or ctx.received_at
    if isinstance(data.get("_gateledger", {}), dict):
        data["_gateledger"] = {**data.get("_gateledger", {}), "delivered_at": utc_iso(delivered)}
    env = Envelope(
        id=eid,
        source=source,
        type=EventType.OBOT_WEBHOOK_DECISION,
        time=delivered,
        received_at=ctx.received_at,
        tenant=ctx.tenant,
        subject=ctx.subject,
        request_id=request_id,
        trace_id=trace_id,
        data=data,
    )
    return Published(env, Topic.RAW_OBOT_WEBHOOK, request_id or trace_id or eid)


def _delivered_at(record: Any) -> datetime | None:
    """The delivery time a recorded webhook message carries (``_gateledger.delivered_at``), if any."""
    ann = record.get("_gateledger") if isinstance(record, dict) else None
    raw = ann.get("delivered_at") if isinstance(ann, dict) else None
    if raw is None:
        return None
    try:
        return _DELIVERED.validate_python(raw)
    except ValidationError as exc:
        raise InvalidRecord("schema", f"_gateledger.delivered_at: {exc.errors()[0]['msg']}") from None


# --- AxonFlow ---------------------------------------------------------------------------------


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
    return _validate(AxonFlowExchange, data)


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
    req = _validate(PreCheckRequest, ex.request)
    resp = _validate(PreCheckResponse, ex.response or {})
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
    req = _validate(LlmCallAuditRequest, ex.request)
    resp = _validate(LlmCallAuditResponse, ex.response or {})
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
        data=ctx.masker.mask(ex.wire_dict()) | {"audit_id": resp.audit_id},
    )
    return Published(env, Topic.RAW_AXONFLOW, req.context_id)


def axonflow_governance(record: Any, ctx: IngestContext) -> Published:
    """AxonFlow ``POST /api/v1/decide`` or ``/api/v1/mcp/check-input|check-output`` with its verdict."""
    ex = _exchange(record, ctx, "/api/v1/decide")
    if ex.path == "/api/v1/decide":
        etype, req_ctx = EventType.AXONFLOW_DECIDE, _validate(DecideRequest, ex.request).context
        answer_trace = _validate(DecideResponse, ex.response or {}).trace_id
        subject = None
    elif ex.path in ("/api/v1/mcp/check-input", "/api/v1/mcp/check-output"):
        check = _validate(McpCheckRequest, ex.request)
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
    entry = _validate(AuditLogEntry, record)
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


# --- CloudEvents ------------------------------------------------------------------------------


def cloudevent(record: Any, ctx: IngestContext) -> Published:
    """A CloudEvent (structured mode) from a custom gateway."""
    ce = _validate(CloudEvent, record)
    extras = ce.model_extra or {}

    def ext(*names: str) -> str | None:
        for n in names:
            v = extras.get(n)
            if isinstance(v, str) and v:
                return v
        return None

    data = ce.data if isinstance(ce.data, dict) else {}
    request_id = ext("requestid", "request_id") or (data.get("request_id") if isinstance(data, dict) else None)
    tenant = ext("tenant", "tenantid") or ctx.tenant
    if ctx.tenant_locked and tenant != ctx.tenant:
        raise InvalidRecord("tenant_mismatch", f"event names tenant {tenant!r}; the caller's token is for {ctx.tenant!r}")
    env = Envelope(
        # CloudEvents promises source + id are unique (per producer, so per tenant: two tenants'
        # gateways may both be "/gateway" numbering events 1, 2, 3...).
        id=tenant_id(tenant, "cloudevent", ce.source, ce.id),
        source=ce.source,
        type=ce.type,
        time=ce.time or ctx.received_at,
        received_at=ctx.received_at,
        tenant=tenant,
        subject=ce.subject,
        request_id=request_id,
        context_id=ext("contextid", "context_id"),
        trace_id=trace_id_from_traceparent(ext("traceparent")),
        session_id=ext("sessionid", "session_id"),
        data=ctx.masker.mask(ce.wire_dict()),
    )
    return Published(env, Topic.RAW_CLOUDEVENTS, request_id or env.context_id or env.id)


_IDENTITY_FIELDS = ("subject", "request_id", "session_id", "context_id", "trace_id", "source")


def bounded_time(fn: FormatFn) -> FormatFn:
    """The format refusing (``future_time``) an event dated beyond its receipt plus the allowed skew."""

    def wrapped(record: Any, ctx: IngestContext) -> Published:
        published = fn(record, ctx)
        env = published.envelope
        error = future_time_error(env.time, env.received_at, ctx.max_future_skew)
        if error:
            raise InvalidRecord("future_time", error)
        return published

    wrapped.__name__ = getattr(fn, "__name__", "format")
    wrapped.__doc__ = fn.__doc__
    return wrapped


def masked_identity(fn: FormatFn) -> FormatFn:
    """The format with the envelope's identity fields and Kafka key masked like ``data`` (an email used
    as a user id or a request id becomes the same pseudonym it gets inside ``data``, so correlation
    and partitioning still hold; a CloudEvent ``source`` loses its ``user:pass@``)."""

    def wrapped(record: Any, ctx: IngestContext) -> Published:
        published = fn(record, ctx)
        env = published.envelope
        changes = {}
        for name in _IDENTITY_FIELDS:
            value = getattr(env, name)
            if value:
                masked = ctx.masker.mask_text(value)
                if masked != value:
                    changes[name] = masked
        key = ctx.masker.mask_text(published.key)
        if not changes and key == published.key:
            return published
        return Published(env.model_copy(update=changes) if changes else env, published.topic, key)

    wrapped.__name__ = getattr(fn, "__name__", "format")
    wrapped.__doc__ = fn.__doc__
    return wrapped


FORMATS: dict[str, FormatFn] = {
    name: masked_identity(bounded_time(fn))
    for name, fn in {
        "obot-audit": obot_audit,
        "obot-audit-event": obot_audit_event,
        "obot-llm": obot_llm,
        "obot-export": obot_export,
        "obot-webhook": obot_webhook,
        "axonflow-precheck": axonflow_precheck,
        "axonflow-llm-call": axonflow_llm_call,
        "axonflow-governance": axonflow_governance,
        "axonflow-audit-entry": axonflow_audit_entry,
        "cloudevents": cloudevent,
    }.items()
}


def get_format(name: str) -> FormatFn:
    """The format called ``name``; ValueError naming the valid ones otherwise."""
    try:
        return FORMATS[name]
    except KeyError:
        raise ValueError(f"unknown format {name!r}; one of: {', '.join(FORMATS)}") from None
