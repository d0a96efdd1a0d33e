"""AxonFlow pre-checks (and gateledger CloudEvents) -> ``PolicyDecision``."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import PolicyDecision
from gateledger.contracts.wire import AxonFlowExchange, PreCheckRequest, PreCheckResponse
from stream_processors.normalize.errors import InvalidEvent, schema_error


def _strs(v: Any) -> list[str]:
    if isinstance(v, list):
        return [str(x) for x in v if x is not None and not isinstance(x, dict | list)]
    return []


def decision_from_precheck(env: Envelope) -> PolicyDecision:
    """A PolicyDecision from an ``axonflow.precheck`` envelope (request + response + HTTP status)."""
    try:
        ex = AxonFlowExchange.model_validate(env.data)
        req = PreCheckRequest.model_validate(ex.request)
        resp = PreCheckResponse.model_validate(ex.response or {})
    except ValidationError as exc:
        raise schema_error("AxonFlow pre-check", exc) from None
    ctx = req.context or {}
    # No verdict in the body: the HTTP status is the verdict (402 budget block, 403 denied...).
    approved = resp.approved if resp.approved is not None else 200 <= ex.status < 300
    budget = resp.budget_info
    user = ctx.get("user_id") or ctx.get("user")
    return PolicyDecision(
        id=env.id,
        version=1,
        tenant=env.tenant,
        time=env.time,
        source=env.source,
        context_id=resp.context_id,
        request_id=env.request_id,
        trace_id=env.trace_id,
        client_id=req.client_id,
        user_id=str(user) if user else env.subject,
        user_token_hash=req.user_token,  # the producer replaced the token with its salted hash
        approved=bool(approved),
        block_reason=resp.block_reason,
        policies=list(resp.policies or []),
        requires_redaction=bool(resp.requires_redaction),
        http_status=ex.status,
        expires_at=resp.expires_at,
        data_sources=list(req.data_sources or []),
        mcp_servers=_strs(ctx.get("mcp_servers")),
        agent_framework=str(ctx["agent_framework"]) if ctx.get("agent_framework") else None,
        budget_id=budget.budget_id if budget else None,
        budget_exceeded=budget.exceeded if budget else None,
        rate_limit_remaining=resp.rate_limit.remaining if resp.rate_limit else None,
        event_ids=[env.id],
        budget_warning=ex.budget_warning,
    )


_CE_FIELDS = {
    "context_id", "request_id", "trace_id", "client_id", "user_id", "approved", "block_reason", "policies",
    "requires_redaction", "http_status", "expires_at", "data_sources", "mcp_servers", "agent_framework",
    "budget_id", "budget_exceeded", "rate_limit_remaining",
}


def decision_from_cloudevent(env: Envelope, data: dict[str, Any]) -> PolicyDecision:
    """A PolicyDecision from a ``gateledger.policy.decision`` CloudEvent (canonical field names)."""
    fields = {k: v for k, v in data.items() if k in _CE_FIELDS and v is not None}
    if "approved" not in fields:
        raise InvalidEvent("schema", "not a valid gateledger.policy.decision data: approved: Field required")
    base = {"request_id": env.request_id, "context_id": env.context_id, "trace_id": env.trace_id,
            "user_id": env.subject}
    try:
        return PolicyDecision(id=env.id, version=1, tenant=env.tenant, time=env.time, source=env.source,
                              **(base | fields), event_ids=[env.id])
    except ValidationError as exc:
        raise schema_error("gateledger.policy.decision data", exc) from None
