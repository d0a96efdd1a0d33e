"""LLM calls from Obot's LLM gateway log and gateledger CloudEvents -> ``LlmCall``.

AxonFlow's LLM calls are built beside their join: the tap's audits in ``axonflow.py``, rows of its
audit trail in ``axonflow_trail.py``.
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import LlmCall
from gateledger.contracts.wire import ObotLlmAuditLog
from gateledger.money.usage import Tokens, normalize_usage, token_fields
from stream_processors.normalize.errors import InvalidEvent, schema_error
from stream_processors.normalize.outcome import llm_status


def call_from_obot(env: Envelope) -> LlmCall:
    """An LlmCall from an Obot LLM gateway audit log record."""
    try:
        rec = ObotLlmAuditLog.model_validate(env.data)
    except ValidationError as exc:
        raise schema_error("Obot LLM audit log", exc) from None
    if rec.inputTokens is None and rec.outputTokens is None:
        body = rec.responseBody if isinstance(rec.responseBody, dict) else {}
        tokens = normalize_usage(body.get("usage"))
    else:
        tokens = normalize_usage({"input_tokens": rec.inputTokens, "output_tokens": rec.outputTokens})
        body = rec.responseBody if isinstance(rec.responseBody, dict) else {}
        cached = normalize_usage(body.get("usage")) if body.get("usage") else None
        if cached and (cached.cache_read or cached.cache_write):
            tokens = Tokens(tokens.input, tokens.output, cached.cache_read, cached.cache_write, tokens.total, True)
    http = rec.responseStatus or None
    return LlmCall(
        id=env.id,
        version=1,
        tenant=env.tenant,
        time=env.time,
        source=env.source,
        user_id=rec.userID,
        api_key_id=rec.apiKeyID,
        provider=rec.modelProvider or "",
        model=rec.modelID or rec.targetModel or "",
        response_model=rec.targetModel,
        **token_fields(tokens),
        latency_ms=rec.duration,
        status=llm_status(rec.outcome, http, rec.error),
        error=rec.error or None,
        http_status=http,
        request_id=env.request_id,
        trace_id=env.trace_id,
        session_id=rec.clientSessionID,
        response_id=rec.responseID,
        event_ids=[env.id],
    )


# Canonical LlmCall fields a CloudEvent's data may set directly.
_CE_LLM_FIELDS = {
    "user_id", "client_id", "api_key_id", "provider", "model", "response_model", "latency_ms", "error",
    "http_status", "context_id", "request_id", "trace_id", "session_id", "response_id", "audit_id",
}


def call_from_cloudevent(env: Envelope, data: dict[str, Any]) -> LlmCall:
    """An LlmCall from a ``gateledger.llm.call`` CloudEvent whose data uses canonical names."""
    fields = {k: v for k, v in data.items() if k in _CE_LLM_FIELDS and v is not None}
    usage = data.get("usage") if isinstance(data.get("usage"), dict) else data
    tokens = normalize_usage(usage)
    status = data.get("status")
    try:
        return LlmCall(
            id=env.id,
            version=1,
            tenant=env.tenant,
            time=env.time,
            source=env.source,
            **{"user_id": env.subject, "request_id": env.request_id, "context_id": env.context_id,
               "trace_id": env.trace_id, "session_id": env.session_id} | fields,
            **token_fields(tokens),
            status=llm_status(status if isinstance(status, str) else None, data.get("http_status"), data.get("error")),
            event_ids=[env.id],
        )
    except ValidationError as exc:
        raise schema_error("gateledger.llm.call data", exc) from None
    except TypeError as exc:  # a field given twice in incompatible shapes
        raise InvalidEvent("schema", f"not a valid gateledger.llm.call data: {exc}") from None
