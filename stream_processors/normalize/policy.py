"""gateledger CloudEvents -> ``PolicyDecision``.

AxonFlow's pre-checks are built beside their join (``axonflow.py``).
"""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import PolicyDecision
from stream_processors.normalize.errors import InvalidEvent, schema_error


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
