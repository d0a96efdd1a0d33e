"""Obot's wire formats (MCP audit, audit-log events, LLM gateway, exports, webhook filter) as envelopes.

Field meanings are Obot's: see gateledger/contracts/wire/obot.py and shared/reference/wire-formats.md.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import TypeAdapter, ValidationError

from gateledger.contracts.envelope import Envelope, utc_iso
from gateledger.contracts.wire import (
    JsonRpcMessage,
    ObotAuditLogEvent,
    ObotLlmAuditLog,
    ObotMcpAuditRecord,
    ObotShimAuditRecord,
)
from gateledger.contracts.wire.base import UtcTime
from gateledger.correlation import mcp_message_keys
from gateledger.ids import event_id, tenant_id
from gateledger.topics import EventType, Format, Topic
from producers.accept import FormatFn, IngestContext, InvalidRecord, Published, kafka_key, validate

_DELIVERED: TypeAdapter[datetime] = TypeAdapter(UtcTime)


# --- Obot MCP audit (flat and shim variants) --------------------------------------------------


def obot_audit(record: Any, ctx: IngestContext) -> Published:
    """Obot flat MCP audit record, or the shim's variant with ``subject`` + ``metadata``."""
    if isinstance(record, dict) and ("subject" in record or "metadata" in record):
        try:  # validated once; an invalid record is validated again for the error as the shim's
            flat = ObotShimAuditRecord.flat_from_wire(record)
        except ValidationError:
            flat = validate(ObotShimAuditRecord, record).flattened()
    else:
        flat = validate(ObotMcpAuditRecord, record)
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
    return Published(env, Topic.RAW_OBOT_MCP, kafka_key(mcp_id, flat.sessionID, flat.requestID))


def obot_audit_event(record: Any, ctx: IngestContext) -> Published:
    """Obot ``AuditLogEvent`` (v0.24+: list, detail or JSONL export), an MCP call or a local-agent tool call."""
    ev = validate(ObotAuditLogEvent, record)
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
        return Published(env, Topic.RAW_OBOT_MCP, kafka_key(env.subject, session, tool_use or ev.id))
    return Published(env, Topic.RAW_OBOT_MCP, kafka_key(server, session, trace.requestID if trace else ev.id))


# --- Obot LLM gateway -------------------------------------------------------------------------


def obot_llm(record: Any, ctx: IngestContext) -> Published:
    """Obot LLM gateway audit log record."""
    rec = validate(ObotLlmAuditLog, record)
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
    msg = validate(JsonRpcMessage, record)
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


FORMATS: dict[Format, FormatFn] = {
    Format.OBOT_AUDIT: obot_audit,
    Format.OBOT_AUDIT_EVENT: obot_audit_event,
    Format.OBOT_LLM: obot_llm,
    Format.OBOT_EXPORT: obot_export,
    Format.OBOT_WEBHOOK: obot_webhook,
}
