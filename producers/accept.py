"""Accepting records: validate each in its format, publish the valid, dead-letter the invalid.

Shared by every HTTP endpoint and by ``gateledger ingest``, so that the rules are the same
whichever way a record arrives: nothing accepted is lost (success only after the broker's
acknowledgement) and nothing rejected is dropped silently (it goes to the dead-letter topic).

Every wire format by name (``FORMATS``, ``get_format``): the registry's formats (gateledger/topics.py),
each mapped by its system's folder (``producers/<system>/formats.py``) and wrapped the same way: events
dated in the future refused, identity fields masked (``producers/formats.py``).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from importlib import import_module
from typing import Any

from gateledger import jsonutil
from gateledger.deadletter import make_dead_letter
from gateledger.topics import SOURCES, Format, formats_of
from producers import telemetry
from producers.formats import FormatFn, IngestContext, InvalidRecord, Published, bounded_time, masked_identity
from producers.publisher import Publisher

# Each system the registry names maps its formats in its own folder (``FORMATS`` of
# producers/<system>/formats.py): a new gateway's folder is found from its registry entry, not listed here.
_BY_SYSTEM: dict[str, dict[Format, FormatFn]] = {
    system: import_module(f"producers.{system}.formats").FORMATS
    for system in dict.fromkeys(s.system for s in SOURCES)
}


def _collect() -> dict[Format, FormatFn]:
    """The registry's formats in ``Format`` order; RuntimeError when a system maps more or fewer than it lists."""
    systems = dict.fromkeys(s.system for s in SOURCES)
    out: dict[Format, FormatFn] = {}
    for system in systems:
        mapped = _BY_SYSTEM.get(system, {})
        if set(mapped) != set(formats_of(system)):
            raise RuntimeError(f"producers/{system}/formats.py maps {sorted(mapped)}, "
                               f"gateledger/topics.py lists {sorted(formats_of(system))}")
        out.update((f, mapped[f]) for f in formats_of(system))
    if set(out) != set(Format):
        raise RuntimeError(f"formats in no source: {sorted(set(Format) - set(out))}")
    return {f: out[f] for f in Format}


FORMATS: dict[Format, FormatFn] = {name: masked_identity(bounded_time(fn)) for name, fn in _collect().items()}


def get_format(name: str) -> FormatFn:
    """The format called ``name``; ValueError naming the valid ones otherwise."""
    try:
        return FORMATS[name]  # type: ignore[index]  # a Format is the str it names
    except KeyError:
        raise ValueError(f"unknown format {name!r}; one of: {', '.join(FORMATS)}") from None


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
