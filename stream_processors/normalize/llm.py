"""LLM calls from AxonFlow audits, Obot's LLM gateway log and gateledger CloudEvents -> ``LlmCall``."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import LlmCall, LlmCallStatus
from gateledger.contracts.wire import AuditLogEntry, AxonFlowExchange, LlmCallAuditRequest, ObotLlmAuditLog
from gateledger.money.usage import Tokens, normalize_usage
from stream_processors.normalize.errors import InvalidEvent, schema_error
from stream_processors.normalize.outcome import llm_status


def _token_fields(t: Tokens) -> dict[str, Any]:
    return {
        "input_tokens": t.input,
        "output_tokens": t.output,
        "cache_read_tokens": t.cache_read,
        "cache_write_tokens": t.cache_write,
        "total_tokens": t.total,
        "tokens_reported": t.reported,
    }


def parse_audit(env: Envelope) -> tuple[AxonFlowExchange, LlmCallAuditRequest]:
    """The exchange and request of an ``axonflow.llm_audit`` envelope."""
    try:
        ex = AxonFlowExchange.model_validate(env.data)
        req = LlmCallAuditRequest.model_validate(ex.request)
    except ValidationError as exc:
        raise schema_error("AxonFlow LLM-call audit", exc) from None
    return ex, req


def audit_refused(ex: AxonFlowExchange) -> str | None:
    """Why AxonFlow did not accept an LLM-call audit (a non-2xx answer, or ``success: false``), else None."""
    resp = ex.response or {}
    if 200 <= ex.status < 300 and resp.get("success") is not False:
        return None
    why = resp.get("error") if isinstance(resp.get("error"), str) else None
    return f"audit refused by AxonFlow: HTTP {ex.status}" + (f" ({why})" if why else "")


def call_from_axonflow_audit(env: Envelope, enrich: dict[str, Any] | None = None) -> LlmCall:
    """An LlmCall from an AxonFlow audit; ``enrich`` carries its pre-check's keys once joined."""
    ex, req = parse_audit(env)
    meta = req.metadata or {}
    refused = audit_refused(ex)
    failed = bool(meta.get("error")) or refused is not None
    usage = req.token_usage.model_dump(exclude_none=True) if req.token_usage else None
    tokens = normalize_usage(usage)
    if refused is not None:
        # The usage is only the client's claim in an audit AxonFlow did not accept (it stays in the
        # raw exchange): no tokens counted, nothing billed (a failed call without usage is free).
        tokens = Tokens()
    extra = enrich or {}
    ids = [env.id, *extra.get("event_ids", [])]
    request_id = extra.get("request_id") or (str(meta["request_id"]) if meta.get("request_id") else None)
    return LlmCall(
        id=env.id,
        version=len(ids),
        tenant=env.tenant,
        time=env.time,
        source=env.source,
        user_id=extra.get("user_id"),
        client_id=req.client_id or extra.get("client_id"),
        provider=req.provider,
        model=req.model,
        **_token_fields(tokens),
        latency_ms=req.latency_ms,
        status=LlmCallStatus.ERROR if failed else LlmCallStatus.SUCCESS,
        error=refused or (str(meta.get("error_message") or meta.get("error")) if failed else None),
        context_id=req.context_id,
        request_id=request_id,
        trace_id=extra.get("trace_id") or env.trace_id,
        session_id=env.session_id,
        audit_id=(env.data or {}).get("audit_id") if isinstance(env.data, dict) else None,
        event_ids=sorted(ids),
    )


# How a gap-filled call is priced, on the call and its cost row: audit_logger.go's AuditEntry has
# ``tokens_used`` only.
AUDIT_TRAIL_USAGE_NOTE = ("from AxonFlow's audit trail, which has only tokens_used (no prompt/completion split): "
                          "all of it priced at the output rate, an upper bound")


def call_from_audit_entry(env: Envelope, entry: AuditLogEntry) -> LlmCall | None:
    """The LLM call a row of AxonFlow's audit trail shows, else None.

    Only rows of an LLM call (a provider and a model: the orchestrator's ``LogSuccessfulRequest`` /
    ``LogFailedRequest``, audit_logger.go) and not blocked. Whether the tap recorded the call itself
    (then it is already an ``LlmCall``, never a second one) is the join's to check
    (``axonflow_trail._fill_pending``): only a gap is filled from here. The row's
    ``tokens_used`` is a total; it is counted as output tokens so that the price (and every budget
    it counts in) is an upper bound rather than an under-count; AxonFlow's own ``cost`` stays in
    the raw row.
    """
    if not entry.is_llm_call() or entry.blocked():
        return None
    failed = (entry.policy_decision or "").lower() == "error"
    total = entry.tokens_used or 0
    note = AUDIT_TRAIL_USAGE_NOTE
    if entry.cost is not None:
        note += f"; AxonFlow estimated {entry.cost} USD"
    return LlmCall(
        id=env.id,
        version=1,
        tenant=env.tenant,
        time=env.time,
        source=env.source,
        user_id=entry.user_email or None,
        client_id=entry.client_id or None,
        provider=entry.provider or "",
        model=entry.model or "",
        **_token_fields(Tokens(0, total, 0, 0, total, entry.tokens_used is not None)),
        latency_ms=entry.response_time_ms if entry.response_time_ms is not None else entry.latency_ms,
        status=LlmCallStatus.ERROR if failed else LlmCallStatus.SUCCESS,
        error=(entry.error_message or "failed (AxonFlow's audit trail)") if failed else None,
        context_id=env.context_id,
        request_id=entry.request_id or None,
        trace_id=env.trace_id,
        usage_note=note,
        event_ids=[env.id],
    )


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
        **_token_fields(tokens),
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
            **_token_fields(tokens),
            status=llm_status(status if isinstance(status, str) else None, data.get("http_status"), data.get("error")),
            event_ids=[env.id],
        )
    except ValidationError as exc:
        raise schema_error("gateledger.llm.call data", exc) from None
    except TypeError as exc:  # a field given twice in incompatible shapes
        raise InvalidEvent("schema", f"not a valid gateledger.llm.call data: {exc}") from None
