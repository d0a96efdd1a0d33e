"""Obot MCP audit records (flat, shim, AuditLogEvent) -> ``McpCall`` and the webhook decisions on it.

A flat record is a whole exchange, or only its request half, or only its response half. Halves
are merged by ``merge.py``; this module classifies records and builds the call from one record or
from a pair of halves.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import ValidationError

from gateledger import jsonutil
from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import McpCall, WebhookDecision, WebhookDecisionOutcome, WebhookStatusEntry
from gateledger.contracts.wire import ObotAuditLogEvent, ObotMcpAuditRecord
from gateledger.contracts.wire.mcp import HOUSEKEEPING_METHODS, HOUSEKEEPING_PREFIX
from gateledger.ids import stable_id
from stream_processors.normalize.errors import schema_error
from stream_processors.normalize.outcome import mcp_status, obot_outcome

Half = Literal["whole", "request", "response"]

# Fields a response half owns; when merging, these come from the response.
_RESPONSE_FIELDS = (
    "responseBody", "originalResponseBody", "responseStatus", "error", "processingTimeMs",
    "responseMutated", "responseReceived", "responseHeaders",
)


def _empty(v: Any) -> bool:
    return v is None or v == "" or v == [] or v == {}


def parse_flat(env: Envelope) -> ObotMcpAuditRecord:
    """The flat record inside an ``obot.mcp.call`` envelope."""
    try:
        return ObotMcpAuditRecord.model_validate(env.data)
    except ValidationError as exc:
        raise schema_error("Obot MCP audit record", exc) from None


def half_of(rec: ObotMcpAuditRecord) -> Half:
    """Which part of an exchange a flat record carries."""
    has_request = bool(rec.callType) or rec.requestBody is not None
    has_response = (
        rec.responseBody is not None or bool(rec.responseStatus) or bool(rec.responseReceived)
        or rec.processingTimeMs is not None and not rec.callType
    )
    if has_request and not has_response:
        # Nothing to pair it with without a JSON-RPC id: it stands alone.
        return "request" if rec.requestID else "whole"
    if has_response and not has_request:
        return "response" if rec.requestID else "whole"
    return "whole"


def exchange_key(env: Envelope, rec: ObotMcpAuditRecord) -> str:
    """Halves of one exchange share this (same server + session + JSON-RPC id, in one tenant)."""
    return "|".join((env.tenant, env.source, str(rec.mcp_field("mcpID") or ""), rec.sessionID or "",
                     rec.requestID or ""))


# Protocol housekeeping: methods that serve the connection, not a user's request (MCP spec,
# modelcontextprotocol/specification: lifecycle `initialize`, utility `ping`, the list methods a
# client calls to learn what a server offers, and every `notifications/*`).


def is_housekeeping(call: McpCall) -> bool:
    """True for an MCP call that is protocol housekeeping: recorded as a call, never an interaction."""
    method = call.method or ""
    if method in HOUSEKEEPING_METHODS or method.startswith(HOUSEKEEPING_PREFIX):
        return True
    # A response half with no JSON-RPC id answers no request we could name (Obot records one for
    # every server-sent message on a session): nothing a user asked for.
    return not method and not call.jsonrpc_id and not call.tool_name


def merged_call_id(xkey: str, generation: int) -> str:
    """Id of a merged exchange: independent of which half came first."""
    return stable_id("mcp_exchange", xkey, generation)


def _union_statuses(*lists: list[Any] | None) -> list[dict[str, Any]]:
    seen: set[bytes] = set()
    out: list[dict[str, Any]] = []
    for lst in lists:
        for w in lst or []:
            d = w if isinstance(w, dict) else w.model_dump(exclude_none=True)
            k = jsonutil.canonical_bytes(d)
            if k not in seen:
                seen.add(k)
                out.append(d)
    return out


def _target_type(method: str) -> str | None:
    if method.startswith("tools/"):
        return "mcp_tool"
    if method.startswith("resources/"):
        return "mcp_resource"
    if method.startswith("prompts/"):
        return "mcp_prompt"
    return "mcp_server" if method else None


def _body(v: Any) -> str | None:
    if v is None:
        return None
    return v if isinstance(v, str) else jsonutil.dumps_str(v)


def _meta_context_id(body: Any) -> str | None:
    if isinstance(body, dict) and isinstance(body.get("params"), dict):
        meta = body["params"].get("_meta")
        if isinstance(meta, dict):
            v = meta.get("io.gateledger/contextId") or meta.get("context_id") or meta.get("contextId")
            return str(v) if v else None
    return None


def call_from_flat(
    *, call_id: str, request: tuple[Envelope, ObotMcpAuditRecord] | None,
    response: tuple[Envelope, ObotMcpAuditRecord] | None, complete: bool,
) -> McpCall:
    """An McpCall from a whole record (passed as ``request``) or a pair of halves (either may be missing)."""
    parts = [p for p in (request, response) if p is not None]
    if not parts:
        raise ValueError("call_from_flat needs at least one record")
    first_env = parts[0][0]
    if request is not None and response is not None:
        # The envelopes' data are the wire dicts (set fields only): merge those, validate once.
        req_d = request[0].data if isinstance(request[0].data, dict) else request[1].model_dump(exclude_unset=True)
        resp_d = response[0].data if isinstance(response[0].data, dict) else \
            response[1].model_dump(exclude_unset=True)
        data = {k: v for k, v in resp_d.items() if not _empty(v)}
        data.update({k: v for k, v in req_d.items() if not _empty(v)})
        for k in _RESPONSE_FIELDS:
            if not _empty(resp_d.get(k)):
                data[k] = resp_d[k]
        data["webhookStatuses"] = _union_statuses(req_d.get("webhookStatuses"), resp_d.get("webhookStatuses"))
        rec = ObotMcpAuditRecord.model_validate(data)
    else:
        rec = parts[0][1]
    envs = [p[0] for p in parts]
    statuses = [WebhookStatusEntry.model_validate(w if isinstance(w, dict) else w.model_dump())
                for w in _union_statuses(rec.webhookStatuses)]
    rejected = any((w.status or "").lower() == "rejected" for w in statuses)
    http = rec.responseStatus or None
    method = rec.callType or ""
    req_env = request[0] if request is not None else None
    return McpCall(
        id=call_id,
        version=len(envs),
        tenant=first_env.tenant,
        time=(req_env or first_env).time,
        source=first_env.source,
        user_id=rec.userID,
        api_key_id=rec.apiKeyID or rec.apiKey,
        client_name=rec.client_name(),
        client_version=rec.client_version(),
        client_ip=rec.clientIP,
        user_agent=rec.userAgent,
        mcp_server_id=rec.mcp_field("mcpID"),
        mcp_server_name=rec.mcp_field("mcpServerDisplayName"),
        catalog_entry=rec.mcp_field("mcpServerCatalogEntryName"),
        workspace_id=rec.mcp_field("powerUserWorkspaceID"),
        method=method,
        tool_name=rec.callIdentifier,
        target_type=_target_type(method),
        status=mcp_status(http, rec.error, rejected),
        http_status=http,
        error=rec.error or None,
        duration_ms=rec.processingTimeMs,
        session_id=rec.sessionID,
        jsonrpc_id=rec.requestID,
        request_id=next((e.request_id for e in envs if e.request_id), None),
        trace_id=next((e.trace_id for e in envs if e.trace_id), None),
        context_id=_meta_context_id(rec.requestBody),
        request_mutated=bool(rec.requestMutated),
        response_mutated=bool(rec.responseMutated),
        webhook_rejected=rejected,
        webhook_statuses=statuses,
        request_body=_body(rec.requestBody),
        response_body=_body(rec.responseBody),
        complete=complete,
        event_ids=sorted(e.id for e in envs),
    )


def call_from_audit_event(env: Envelope) -> McpCall:
    """An McpCall from an Obot v0.24+ AuditLogEvent (always a whole exchange)."""
    try:
        ev = ObotAuditLogEvent.model_validate(env.data)
    except ValidationError as exc:
        raise schema_error("Obot AuditLogEvent", exc) from None
    d = ev.details
    trace = d.trace if d else None
    target = ev.target
    server_ref = None
    if target is not None:
        if target.parent is not None and (target.parent.targetType in (None, "mcp_server")):
            server_ref = target.parent
        elif target.targetType == "mcp_server":
            server_ref = target
    client = d.client if d and d.client else None
    top_client = ev.client if isinstance(ev.client, dict) else {}
    outcome = ev.outcome
    statuses = [WebhookStatusEntry.model_validate(w) for w in _union_statuses(d.webhookStatuses if d else None)]
    rejected = any((w.status or "").lower() == "rejected" for w in statuses)
    http = outcome.httpStatus if outcome and outcome.httpStatus else None
    error = (outcome.error or outcome.reason) if outcome else None
    status = obot_outcome(outcome.status if outcome else None) or mcp_status(http, error, rejected)
    method = (ev.action.operation if ev.action else None) or ""
    req_body = d.request.body if d and d.request else None
    return McpCall(
        id=env.id,
        version=1,
        tenant=env.tenant,
        time=env.time,
        source=env.source,
        user_id=ev.actor.id if ev.actor else None,
        api_key_id=ev.actor.credentialID if ev.actor else None,
        client_name=(client.name if client else None) or top_client.get("name"),
        client_version=(client.version if client else None) or top_client.get("version"),
        client_ip=d.network.clientIP if d and d.network else None,
        user_agent=client.userAgent if client else None,
        mcp_server_id=server_ref.id if server_ref else None,
        mcp_server_name=server_ref.name if server_ref else None,
        catalog_entry=d.scope.mcpServerCatalogEntryName if d and d.scope else None,
        workspace_id=d.scope.powerUserWorkspaceID if d and d.scope else None,
        method=method,
        tool_name=ev.action.name if ev.action else None,
        target_type=(target.targetType if target else None) or _target_type(method),
        status=status,
        http_status=http,
        error=error or None,
        duration_ms=outcome.durationMs if outcome else None,
        session_id=trace.sessionID if trace else None,
        jsonrpc_id=trace.requestID if trace else None,
        request_id=env.request_id,
        trace_id=env.trace_id,
        context_id=_meta_context_id(req_body),
        request_mutated=bool(d.request.mutated) if d and d.request else False,
        response_mutated=bool(d.response.mutated) if d and d.response else False,
        webhook_rejected=rejected,
        webhook_statuses=statuses,
        agent_provider=d.agent.provider if d and d.agent else None,
        agent_model=(d.agent.model or d.agent.modelID) if d and d.agent else None,
        request_body=_body(req_body),
        response_body=_body(d.response.body if d and d.response else None),
        complete=True,
        event_ids=[env.id],
    )


_DECISIONS = {
    "rejected": WebhookDecisionOutcome.REJECTED,
    "denied": WebhookDecisionOutcome.REJECTED,
    "blocked": WebhookDecisionOutcome.REJECTED,
    "mutated": WebhookDecisionOutcome.MUTATED,
    "modified": WebhookDecisionOutcome.MUTATED,
}


def decision_of(word: str | None) -> WebhookDecisionOutcome:
    """A webhook status word as a decision (``ok`` and anything unknown mean accepted)."""
    return _DECISIONS.get((word or "").lower(), WebhookDecisionOutcome.ACCEPTED)


def webhook_decisions(call: McpCall) -> list[WebhookDecision]:
    """One WebhookDecision per ``webhookStatuses`` entry Obot recorded on a call."""
    out = []
    for entry in call.webhook_statuses:
        out.append(WebhookDecision(
            id=stable_id("obot_webhook_status", call.id, entry.model_dump(exclude_none=True)),
            version=call.version,
            tenant=call.tenant,
            time=call.time,
            source=call.source,
            origin="obot_audit",
            filter_name=entry.name,
            phase=entry.type,
            method=entry.method or call.method or None,
            tool_name=entry.tool or call.tool_name,
            decision=decision_of(entry.status),
            reason=entry.message or None,
            mcp_server_id=call.mcp_server_id,
            user_id=call.user_id,
            session_id=call.session_id,
            jsonrpc_id=call.jsonrpc_id,
            request_id=call.request_id,
            trace_id=call.trace_id,
            mcp_call_id=call.id,
            event_ids=list(call.event_ids),
        ))
    return out


_CE_MCP_FIELDS = {
    "user_id", "api_key_id", "client_name", "client_version", "client_ip", "user_agent", "mcp_server_id",
    "mcp_server_name", "catalog_entry", "workspace_id", "method", "tool_name", "target_type", "http_status",
    "error", "duration_ms", "session_id", "jsonrpc_id", "request_id", "trace_id", "context_id",
    "request_mutated", "response_mutated", "webhook_statuses", "agent_provider", "agent_model",
}


def call_from_cloudevent(env: Envelope, data: dict[str, Any]) -> McpCall:
    """An McpCall from a ``gateledger.mcp.call`` CloudEvent whose data uses canonical names."""
    from stream_processors.normalize.errors import InvalidEvent

    fields = {k: v for k, v in data.items() if k in _CE_MCP_FIELDS and v is not None}
    base = {"user_id": env.subject, "request_id": env.request_id, "trace_id": env.trace_id,
            "context_id": env.context_id, "session_id": env.session_id}
    try:
        statuses = [WebhookStatusEntry.model_validate(w) for w in fields.pop("webhook_statuses", []) or []]
        rejected = any((w.status or "").lower() == "rejected" for w in statuses)
        status = obot_outcome(data.get("status") if isinstance(data.get("status"), str) else None)
        http = fields.get("http_status")
        return McpCall(
            id=env.id, version=1, tenant=env.tenant, time=env.time, source=env.source,
            **(base | fields),
            status=status or mcp_status(http if isinstance(http, int) else None, fields.get("error"), rejected),
            webhook_rejected=rejected, webhook_statuses=statuses, complete=True, event_ids=[env.id],
        )
    except ValidationError as exc:
        raise schema_error("gateledger.mcp.call data", exc) from None
    except TypeError as exc:
        raise InvalidEvent("schema", f"not a valid gateledger.mcp.call data: {exc}") from None
