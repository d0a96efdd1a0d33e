"""Building CloudEvents the way gateledger reads them, and deciding what to do with an answer."""

from __future__ import annotations

import random
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

BATCH_CONTENT_TYPE = "application/cloudevents-batch+json"
# CloudEvents extension attributes gateledger correlates on (lower-case alphanumerics, per spec).
EXTENSIONS = {"tenant": "tenant", "request_id": "requestid", "context_id": "contextid",
              "session_id": "sessionid", "traceparent": "traceparent"}


def make_event(
    type: str,
    data: Any,
    *,
    source: str,
    id: str | None = None,
    time: datetime | None = None,
    subject: str | None = None,
    tenant: str | None = None,
    request_id: str | None = None,
    context_id: str | None = None,
    session_id: str | None = None,
    traceparent: str | None = None,
    **extensions: str,
) -> dict[str, Any]:
    """A CloudEvent (structured JSON form). Give ``id`` when the event has a natural one: gateledger
    derives its event id from ``source`` + ``id``, so re-sending the same event is idempotent."""
    ts = (time or datetime.now(UTC)).astimezone(UTC)
    event: dict[str, Any] = {
        "specversion": "1.0",
        "id": id or uuid.uuid4().hex,
        "source": source,
        "type": type,
        "time": ts.isoformat().replace("+00:00", "Z"),
        "datacontenttype": "application/json",
        "data": data,
    }
    if subject:
        event["subject"] = subject
    for arg, value in (("tenant", tenant), ("request_id", request_id), ("context_id", context_id),
                       ("session_id", session_id), ("traceparent", traceparent)):
        if value:
            event[EXTENSIONS[arg]] = value
    for name, value in extensions.items():
        event[name.lower()] = value
    return event


class EmitError(RuntimeError):
    """Events that could not be delivered (rejected by gateledger, or retries exhausted)."""

    def __init__(self, message: str, events: list[dict[str, Any]], status: int | None = None,
                 details: Any = None) -> None:
        super().__init__(message)
        self.events = events
        self.status = status
        self.details = details


@dataclass(frozen=True)
class RetryPolicy:
    """Backoff for retryable answers (429, 502, 503, 504, network errors); ``Retry-After`` wins."""

    initial_s: float = 0.2
    max_s: float = 10.0
    # Give up (and report the batch) after this long; None: retry until closed.
    give_up_after_s: float | None = 300.0

    def delay(self, attempt: int, retry_after: str | None, rng: random.Random) -> float:
        """Seconds to wait before attempt ``attempt + 1``."""
        if retry_after:
            try:
                return min(float(retry_after), self.max_s)
            except ValueError:
                pass
        return rng.uniform(self.initial_s / 2, min(self.max_s, self.initial_s * 2**attempt))


RETRYABLE = frozenset({408, 429, 500, 502, 503, 504})


@dataclass(frozen=True)
class Outcome:
    """What one HTTP answer means for a batch."""

    kind: str  # "ok" | "retry" | "split" | "failed"
    rejected: list[dict[str, Any]]  # events gateledger refused (dead-lettered on its side)
    details: Any = None


def classify(status: int, payload: Any, batch: list[dict[str, Any]]) -> Outcome:
    """Interpret gateledger's answer to a batch POST."""
    if status == 200:
        return Outcome("ok", [])
    if status == 400 and isinstance(payload, dict) and isinstance(payload.get("rejected"), list):
        # The rest of the batch was accepted; only these records were refused.
        idx = [r.get("index") for r in payload["rejected"] if isinstance(r, dict)]
        return Outcome("ok", [batch[i] for i in idx if isinstance(i, int) and 0 <= i < len(batch)], payload)
    if status in RETRYABLE:
        return Outcome("retry", [], payload)
    if status == 413 and len(batch) > 1:
        return Outcome("split", [], payload)
    return Outcome("failed", list(batch), payload)
