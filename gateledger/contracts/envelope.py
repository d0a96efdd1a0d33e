"""The canonical envelope: every message on a raw Kafka topic is one of these (CloudEvents 1.0 in spirit)."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateledger.contracts.wire.base import UtcTime


class Envelope(BaseModel):
    """One upstream event, as published to a raw topic."""

    model_config = ConfigDict(extra="forbid")

    specversion: str = "1.0"
    # Deterministic: the same upstream record always gets the same id (see gateledger.ids).
    id: str = Field(min_length=1, max_length=128)
    source: str = Field(min_length=1)
    type: str = Field(min_length=1)
    time: UtcTime
    received_at: UtcTime
    tenant: str = Field(min_length=1)
    subject: str | None = None  # the acting user, when known
    request_id: str | None = None
    context_id: str | None = None
    trace_id: str | None = None
    session_id: str | None = None
    # The upstream record as received, after secrets and PII were masked.
    data: Any = None

    def correlation_keys(self) -> dict[str, str]:
        """The correlation keys this envelope carries."""
        keys = {
            "request_id": self.request_id,
            "context_id": self.context_id,
            "trace_id": self.trace_id,
            "session_id": self.session_id,
        }
        return {k: v for k, v in keys.items() if v}


def utc_iso(ts: datetime) -> str:
    """RFC 3339 with microseconds and a Z suffix."""
    return ts.isoformat(timespec="microseconds").replace("+00:00", "Z")
