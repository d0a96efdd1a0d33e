"""Accepting records: each in its format, the valid published, the invalid dead-lettered.

Shared by every HTTP endpoint, poller and ``gateledger ingest``, so that the rules are the same
whichever way a record arrives: nothing accepted is lost (success only after the broker's
acknowledgement) and nothing rejected is dropped silently (it goes to the dead-letter topic).

A format validates one upstream record (its exact wire shape), derives the deterministic event id,
event time, tenant and correlation keys, masks secrets and PII, and says which topic and Kafka key
the envelope goes to: a ``FormatFn`` from the record and its ``IngestContext`` to a ``Published``,
or ``InvalidRecord``. Each system's formats live with it (``producers/<system>/formats.py``, found
from the registry, gateledger/topics.py); ``formats()`` names them all, each wrapped the same way:
events dated in the future refused, identity fields masked.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from functools import cache
from importlib import import_module
from typing import TYPE_CHECKING, Any

from pydantic import ValidationError

from gateledger import jsonutil
from gateledger.clock import utcnow
from gateledger.contracts.envelope import Envelope
from gateledger.deadletter import make_dead_letter
from gateledger.masking import Masker
from gateledger.topics import SOURCES, Format, Topic, formats_of
from producers import telemetry
from producers.event_time import configured_skew, future_time_error

if TYPE_CHECKING:  # the publisher imports ``Published`` from here
    from producers.publisher import Publisher


# -- what every format shares -------------------------------------------------------------------

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


# -- every format by name -----------------------------------------------------------------------


def _by_system() -> dict[str, dict[Format, FormatFn]]:
    """Each system's formats (``FORMATS`` of producers/<system>/formats.py), its folder named by the registry."""
    return {system: import_module(f"producers.{system}.formats").FORMATS
            for system in dict.fromkeys(s.system for s in SOURCES)}


def _collect(by_system: dict[str, dict[Format, FormatFn]]) -> dict[Format, FormatFn]:
    """The registry's formats in ``Format`` order; RuntimeError when a system maps more or fewer than it lists."""
    systems = dict.fromkeys(s.system for s in SOURCES)
    out: dict[Format, FormatFn] = {}
    for system in systems:
        mapped = by_system.get(system, {})
        if set(mapped) != set(formats_of(system)):
            raise RuntimeError(f"producers/{system}/formats.py maps {sorted(mapped)}, "
                               f"gateledger/topics.py lists {sorted(formats_of(system))}")
        out.update((f, mapped[f]) for f in formats_of(system))
    if set(out) != set(Format):
        raise RuntimeError(f"formats in no source: {sorted(set(Format) - set(out))}")
    return {f: out[f] for f in Format}


@cache
def formats() -> dict[Format, FormatFn]:
    """Every format of the registry, wrapped (future-dated refused, identity masked).

    Collected on first use, not at import: each system's formats.py imports this module.
    """
    return {name: masked_identity(bounded_time(fn)) for name, fn in _collect(_by_system()).items()}


def get_format(name: str) -> FormatFn:
    """The format called ``name``; ValueError naming the valid ones otherwise."""
    try:
        return formats()[name]  # type: ignore[index]  # a Format is the str it names
    except KeyError:
        raise ValueError(f"unknown format {name!r}; one of: {', '.join(formats())}") from None


# -- accepting a batch ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Rejection:
    """One record that was not accepted."""

    index: int
    reason: str
    message: str


@dataclass
class AcceptResult:
    """What happened to a batch of records."""

    accepted: int = 0
    event_ids: list[str] = field(default_factory=list)
    rejections: list[Rejection] = field(default_factory=list)


@dataclass(frozen=True)
class RawRecord:
    """A record as parsed from its source, with the bytes it came from (for dead letters)."""

    index: int
    value: Any = None
    raw: bytes | None = None
    error: InvalidRecord | None = None


def parse_body(body: bytes) -> list[RawRecord]:
    """A request body: a JSON array, one JSON object, or JSON lines. Bad JSON is one rejected record."""
    text = body.lstrip()
    if not text:
        return [RawRecord(0, raw=body, error=InvalidRecord("empty", "empty body"))]
    if text[:1] in (b"[", b"{"):
        try:
            value = jsonutil.loads(body)
        except jsonutil.JSONDecodeError as exc:
            if text[:1] == b"{" and b"\n" in text.strip():
                return list(parse_lines(body.splitlines()))
            return [RawRecord(0, raw=body, error=InvalidRecord("invalid_json", f"invalid JSON: {exc}"))]
        if isinstance(value, list):
            return [RawRecord(i, value=v) for i, v in enumerate(value)]
        return [RawRecord(0, value=value, raw=body)]
    return list(parse_lines(body.splitlines()))


def parse_lines(lines: Iterable[bytes]) -> Iterator[RawRecord]:
    """JSON lines, one record each; blank lines are skipped, bad lines become rejected records."""
    for i, line in enumerate(lines):
        if not line.strip():
            continue
        try:
            yield RawRecord(i, value=jsonutil.loads(line), raw=line)
        except jsonutil.JSONDecodeError as exc:
            yield RawRecord(i, raw=line, error=InvalidRecord("invalid_json", f"invalid JSON: {exc}"))


async def accept(
    publisher: Publisher,
    format_name: str,
    records: Iterable[RawRecord],
    ctx: IngestContext,
    origin: str,
    source: str | None = None,
) -> AcceptResult:
    """Validate, publish (waiting for acks) and dead-letter; raises PublishError if Kafka is unavailable."""
    fmt = get_format(format_name)
    source = source or format_name
    result = AcceptResult()
    good: list[Published] = []
    values: list[bytes] = []
    letters = []
    for rec in records:
        err = rec.error
        if err is None:
            try:
                item = fmt(rec.value, ctx)
                value = publisher.encode(item)
                if publisher.fits(value):
                    good.append(item)
                    values.append(value)
                    continue
                # Kafka could never take it: refused like any bad record (a retry cannot help).
                err = InvalidRecord("too_large", f"record over the {publisher.max_record_bytes}-byte record limit")
            except InvalidRecord as exc:
                err = exc
        result.rejections.append(Rejection(rec.index, err.reason, str(err)))
        telemetry.REJECTED.labels(source=source, reason=err.reason).inc()
        original = rec.raw if rec.raw is not None else jsonutil.dumps(rec.value)
        letters.append(
            make_dead_letter(
                stage="ingest",
                origin=origin,
                reason=err.reason,
                error=str(err),
                original=original,
                masker=ctx.masker,
                tenant=ctx.tenant,
                details={"format": format_name, "index": rec.index},
            )
        )
    # Dead letters first: if Kafka is down the caller gets an error and retries the whole batch.
    await publisher.dead_letter(letters, source=source)
    await publisher.publish(good, source=source, values=values)
    result.accepted = len(good)
    result.event_ids = [p.envelope.id for p in good]
    return result
