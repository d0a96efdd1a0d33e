"""What every upstream wire format shares: the record's context, the published envelope, the errors.

A format validates one upstream record (its exact wire shape), derives the deterministic event id,
event time, tenant and correlation keys, masks secrets and PII, and says which topic and Kafka key
the envelope goes to. Each system's formats live with it (``producers/<system>/formats.py``);
``producers/accept.py`` names them all. Every HTTP endpoint, poller and the ``gateledger ingest``
command go through it, so a record means the same thing whichever way it arrived.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from pydantic import ValidationError

from gateledger.clock import utcnow
from gateledger.contracts.envelope import Envelope
from gateledger.masking import Masker
from gateledger.topics import Topic
from producers.event_time import configured_skew, future_time_error


class InvalidRecord(ValueError):
    """A record that is not valid in its declared format. ``reason`` is a short code for dead letters."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


@dataclass
class IngestContext:
    """What the receiving side knows beyond the record itself."""

    masker: Masker
    tenant: str = "default"
    install: str = "default"  # names the upstream installation in ``source``
    received_at: datetime = field(default_factory=utcnow)
    # Per delivery facts for formats without an upstream id (e.g. a webhook delivery's arrival).
    delivery_id: str | None = None
    # Tenant header sent by the caller (AxonFlow X-Tenant-ID), used when the record names none.
    tenant_header: str | None = None
    # The acting user when the transport names it (Obot's X-Obot-User-Id on webhook deliveries).
    subject: str | None = None
    # What gateledger itself knows or decided about the delivery (the webhook filter's verdict,
    # Obot's MCP server id header); recorded under ``data["_gateledger"]``.
    annotations: dict[str, Any] | None = None
    # True when the caller authenticated as ``tenant``: a record may not claim another tenant.
    tenant_locked: bool = False
    # How far after ``received_at`` an event may be dated (producers/event_time.py).
    max_future_skew: timedelta = field(default_factory=configured_skew)


@dataclass(frozen=True)
class Published:
    """An envelope with its destination."""

    envelope: Envelope
    topic: Topic
    key: str


FormatFn = Callable[[Any, IngestContext], Published]


def validate(model: type, record: Any) -> Any:
    """``record`` as ``model``; InvalidRecord (``schema``) naming the first problems otherwise."""
    if not isinstance(record, dict):
        raise InvalidRecord("schema", f"expected a JSON object, got {type(record).__name__}")
    try:
        return model.model_validate(record)
    except ValidationError as exc:
        errs = "; ".join(
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:5]
        )
        raise InvalidRecord("schema", f"not a valid {model.__name__}: {errs}") from None


def kafka_key(*parts: str | None) -> str:
    """A Kafka key joining ``parts`` (None as empty)."""
    return "|".join(p or "" for p in parts)


_IDENTITY_FIELDS = ("subject", "request_id", "session_id", "context_id", "trace_id", "source")
_IDENTIFIERS = frozenset({"request_id", "context_id"})  # join keys (gateledger.masking: mask_identifier)


def bounded_time(fn: FormatFn) -> FormatFn:
    """The format refusing (``future_time``) an event dated beyond its receipt plus the allowed skew."""

    def wrapped(record: Any, ctx: IngestContext) -> Published:
        published = fn(record, ctx)
        env = published.envelope
        error = future_time_error(env.time, env.received_at, ctx.max_future_skew)
        if error:
            raise InvalidRecord("future_time", error)
        return published

    wrapped.__name__ = getattr(fn, "__name__", "format")
    wrapped.__doc__ = fn.__doc__
    return wrapped


def masked_identity(fn: FormatFn) -> FormatFn:
    """The format with the envelope's identity fields and Kafka key masked like ``data`` (an email used
    as a user id becomes the same pseudonym it gets inside ``data``, a request or context id holding a
    secret or PII the same salted hash, so correlation and partitioning still hold; a CloudEvent
    ``source`` loses its ``user:pass@``)."""

    def wrapped(record: Any, ctx: IngestContext) -> Published:
        published = fn(record, ctx)
        env = published.envelope
        changes = {}
        for name in _IDENTITY_FIELDS:
            value = getattr(env, name)
            if value:
                # Ids as ``data`` masks them under their keys: the same hash in both, so joins hold.
                masked = ctx.masker.mask_identifier(value) if name in _IDENTIFIERS else ctx.masker.mask_text(value)
                if masked != value:
                    changes[name] = masked
        key = ctx.masker.mask_identifier(published.key)  # a key is an id too (often the same one)
        if not changes and key == published.key:
            return published
        return Published(env.model_copy(update=changes) if changes else env, published.topic, key)

    wrapped.__name__ = getattr(fn, "__name__", "format")
    wrapped.__doc__ = fn.__doc__
    return wrapped
