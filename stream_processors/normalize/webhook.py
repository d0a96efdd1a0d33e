"""Messages seen by gateledger's own Obot webhook filter (and CloudEvents) -> ``WebhookDecision``.

The envelope's data is the JSON-RPC message Obot POSTed to the filter. The filter records its
verdict next to the message under ``_gateledger`` (``{"decision": "accepted|rejected|mutated",
"reason": ..., "filter": ..., "mcp_server_id": ...}``); a message without one was accepted (the
filter's default answer is 2xx).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import WebhookDecision
from gateledger.contracts.wire import JsonRpcMessage
from stream_processors.normalize.errors import InvalidEvent, schema_error
from stream_processors.normalize.mcp import decision_of

VERDICT_KEY = "_gateledger"


def decision_from_filter(env: Envelope) -> WebhookDecision:
    """A WebhookDecision from an ``obot.webhook.decision`` envelope."""
    data = env.data if isinstance(env.data, dict) else None
    if data is None:
        raise InvalidEvent("schema", "obot.webhook.decision data must be a JSON-RPC object")
    verdict = data.get(VERDICT_KEY) if isinstance(data.get(VERDICT_KEY), dict) else {}
    try:
        msg = JsonRpcMessage.model_validate({k: v for k, v in data.items() if k != VERDICT_KEY})
    except ValidationError as exc:
        raise schema_error("JSON-RPC message", exc) from None
    params = msg.params or {}
    tool = params.get("name") or params.get("uri")
    return WebhookDecision(
        id=env.id,
        version=1,
        tenant=env.tenant,
        time=env.time,
        source=env.source,
        origin="gateledger_filter",
        filter_name=verdict.get("filter"),
        # Response deliveries carry the request's method too (Obot proxy_hooks.go): result / error = response.
        phase=verdict.get("phase") or ("response" if msg.is_response() or not msg.method else "request"),
        method=msg.method,
        tool_name=str(tool) if tool else None,
        decision=decision_of(verdict.get("decision") or "accepted"),
        reason=verdict.get("reason"),
        mcp_server_id=verdict.get("mcp_server_id"),
        user_id=env.subject or verdict.get("user_id"),
        session_id=env.session_id or verdict.get("session_id"),
        jsonrpc_id=msg.id,
        request_id=env.request_id,
        trace_id=env.trace_id,
        event_ids=[env.id],
    )


_CE_FIELDS = {
    "filter_name", "phase", "method", "tool_name", "reason", "mcp_server_id", "user_id", "session_id",
    "jsonrpc_id", "request_id", "trace_id", "mcp_call_id",
}


def decision_from_cloudevent(env: Envelope, data: dict[str, Any]) -> WebhookDecision:
    """A WebhookDecision from a ``gateledger.webhook.decision`` CloudEvent (canonical field names)."""
    fields = {k: v for k, v in data.items() if k in _CE_FIELDS and v is not None}
    base = {"request_id": env.request_id, "trace_id": env.trace_id, "session_id": env.session_id,
            "user_id": env.subject}
    try:
        return WebhookDecision(id=env.id, version=1, tenant=env.tenant, time=env.time, source=env.source,
                               origin="gateledger_filter", decision=decision_of(str(data.get("decision") or "")),
                               **(base | fields), event_ids=[env.id])
    except ValidationError as exc:
        raise schema_error("gateledger.webhook.decision data", exc) from None
