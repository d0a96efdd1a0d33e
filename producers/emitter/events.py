"""Building CloudEvents the way gateledger reads them, and deciding what to do with an answer."""

from __future__ import annotations

import random
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from gateledger.retry import Backoff

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
class RetryPolicy(Backoff):
    """Backoff for retryable answers (429, 502, 503, 504, network errors): gateledger's one policy
    (``gateledger/retry.py``: doubling, jittered, ``Retry-After`` wins), and when to give up."""

    initial_s: float = 0.2
    max_s: float = 10.0
    jitter: bool = True
    # Give up (and report the batch) after this long; None: retry until closed.
    give_up_after_s: float | None = 300.0


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


@dataclass(frozen=True)
class Step:
    """What follows one POST of a batch: return ``errors`` (``sent`` events delivered), split the batch
    in two, or wait ``wait`` seconds and post it again."""

    errors: list[EmitError] | None = None
    sent: int = 0
    split: bool = False
    wait: float = 0.0


class Attempts:
    """The retry policy over the attempts at one batch: the one loop body both emitters (sync.py, aio.py)
    run, each with its own way of posting and sleeping."""

    def __init__(self, policy: RetryPolicy, rng: random.Random, clock: Callable[[], float] = time.monotonic) -> None:
        self.policy, self.rng, self.clock = policy, rng, clock
        self.started = clock()
        self.attempt = 0

    def after(self, status: int, payload: Any, retry_after: str | None, batch: list[dict[str, Any]]) -> Step:
        """The step after an answer (``status`` 0: no answer, ``payload`` the network error)."""
        outcome = classify(status, payload, batch) if status else None
        if outcome is not None and outcome.kind == "ok":
            refused = [EmitError("gateledger rejected event(s)", outcome.rejected, status, outcome.details)]
            return Step(errors=refused if outcome.rejected else [], sent=len(batch) - len(outcome.rejected))
        if outcome is not None and outcome.kind == "split":
            return Step(split=True)
        if outcome is not None and outcome.kind == "failed":
            return Step(errors=[EmitError(f"gateledger answered {status}", outcome.rejected, status, payload)])
        limit = self.policy.give_up_after_s
        if limit is not None and self.clock() - self.started > limit:
            return Step(errors=[EmitError(f"gave up after {self.attempt + 1} attempts (last: {status or payload})",
                                          batch, status)])
        self.attempt += 1
        return Step(wait=self.policy.delay(self.attempt, retry_after, self.rng))
