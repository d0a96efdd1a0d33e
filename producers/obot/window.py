"""One pass of the poller over a stream's time window, publishing each record once.

Obot's list API filters ``start_time <= t < end_time`` on one time column, orders by it and pages
with ``limit`` + ``offset``; there is no "after id" cursor. Which column, and how ties are ordered,
depends on the version (obot-platform/obot ``pkg/gateway/client/mcpauditlog.go`` and
``llmauditlog.go``): up to v0.23 and for LLM logs, ``created_at`` with ties in no stable order;
from v0.24 the MCP list mixes MCP calls and local-agent tool calls, sorts by ``timestamp`` (the
event's ``occurredAt``: ``created_at`` for MCP rows, the client-reported time for local-agent
rows) and breaks ties by ``id``. The pass is correct for both tie orders:

1. it reads ``[watermark - overlap, now)``: the overlap finds records Obot stored late,
   ``end_time = now`` keeps records arriving during the pass from shifting pages under it;
2. each page starts at the time of the previous page's last row (re-reading that tie group, whose
   known rows are skipped); a tie group larger than a page is drained on its own
   (``[t, t + 1 µs)``) until as many distinct rows were seen as Obot counts;
3. each page's new records are published and Kafka's acknowledgement awaited before the checkpoint
   moves and is saved (atomically). A crash between the two can only publish a page again, with
   the same deterministic event ids.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from gateledger import jsonutil
from gateledger.clock import to_utc
from gateledger.contracts.envelope import utc_iso
from gateledger.ids import stable_id
from gateledger.topics import Format
from producers import telemetry
from producers.accept import RawRecord, accept
from producers.accept import IngestContext
from producers.obot.api import PATHS, ObotApi, PollError

if TYPE_CHECKING:
    from producers.obot.poller import ObotPoller

log = logging.getLogger(__name__)

_TICK = timedelta(microseconds=1)  # Obot stores times to the microsecond

Enrich = Callable[[list[Any]], Awaitable[list[Any]]]
OnPublished = Callable[[list[Any]], None]


def record_format(stream: str, record: Any) -> str:
    """The producer format of one listed record (the shape is detected per record)."""
    if stream == "llm":
        return Format.OBOT_LLM
    if isinstance(record, dict) and (isinstance(record.get("timestamp"), dict) or "eventType" in record):
        return Format.OBOT_AUDIT_EVENT
    return Format.OBOT_AUDIT


def parse_utc(raw: Any) -> datetime | None:
    """An RFC 3339 time from a record, in UTC; None when absent or unreadable."""
    try:
        parsed = jsonutil.parse_time(raw)
    except (TypeError, ValueError):
        return None
    return to_utc(parsed) if parsed is not None else None


def record_time(record: Any) -> datetime | None:
    """The time Obot filters and sorts the record's list by: ``createdAt``, or ``timestamp.occurredAt``."""
    if not isinstance(record, dict):
        return None
    ts = record.get("timestamp")
    if isinstance(ts, dict):
        return parse_utc(ts.get("occurredAt") or ts.get("recordedAt"))
    return parse_utc(record.get("createdAt"))


def record_key(record: Any) -> str:
    """The id the poller remembers a record by (Obot's id; a content hash if it has none)."""
    if isinstance(record, dict) and record.get("id") not in (None, ""):
        return str(record["id"])
    return "sha:" + stable_id(record)


class WindowPass:
    """One pass over a stream's window (see the module docstring)."""

    MAX_GROUP_PASSES = 20

    def __init__(self, poller: ObotPoller, api: ObotApi, stream: str, sort: dict[str, str],
                 enrich: Enrich | None = None, on_published: OnPublished | None = None) -> None:
        self.p = poller
        self.api = api
        self.stream = stream
        self.sort = sort
        self.enrich = enrich
        self.on_published = on_published
        self.cp = poller.store.load(stream)
        self.known: set[str] = set(self.cp.recent)
        self.published = 0
        self.now = poller.clock()
        self.source = f"obot-poller-{stream}"

    def params(self, start: datetime, end: datetime, offset: int = 0) -> dict[str, str]:
        return {"start_time": utc_iso(start), "end_time": utc_iso(end), **self.sort,
                "limit": str(self.p.settings.page_size), "offset": str(offset)}

    async def run(self) -> int:
        """Read the window to its end; returns how many records were published."""
        p = self.p
        limit = p.settings.page_size
        wm = self.cp.watermark
        cursor = wm - p.overlap if wm else self.now - timedelta(seconds=p.settings.initial_lookback_s)
        while True:
            items, _ = await self.api.page(self.stream, self.params(cursor, self.now))
            await self.take(items)
            if len(items) < limit:
                return self.published
            times = [t for t in (record_time(i) for i in items) if t is not None]
            if not times:
                raise PollError(f"{PATHS[self.stream]}: a full page without record times; cannot page on")
            first, last = min(times), max(times)
            if first == last:
                await self.drain_group(last)
                cursor = last + _TICK
            else:
                cursor = last

    async def drain_group(self, t: datetime) -> None:
        """Read every row of one timestamp, however the server orders them."""
        group: set[str] = set()
        total: int | None = None
        for _ in range(self.MAX_GROUP_PASSES):
            offset = 0
            while True:
                items, total = await self.api.page(self.stream, self.params(t, t + _TICK, offset))
                await self.take(items)
                group.update(record_key(i) for i in items)
                offset += len(items)
                if len(items) < self.p.settings.page_size:
                    break
            if total is None or len(group) >= total:
                return
        log.warning("obot poller: %d of %s rows at %s seen after %d passes; the rest next cycle",
                    len(group), total, utc_iso(t), self.MAX_GROUP_PASSES)

    async def take(self, items: list[Any]) -> None:
        """Publish the page's unknown rows, wait for Kafka, then move and save the checkpoint."""
        seen: dict[str, datetime] = {}
        fresh_items: list[Any] = []
        for item in items:
            key = record_key(item)
            if key in self.known:
                continue
            self.known.add(key)
            t = record_time(item)
            if t is not None:
                seen[key] = t
            fresh_items.append(item)
        if not fresh_items:
            return
        try:
            if self.enrich is not None:
                fresh_items = await self.enrich(fresh_items)
            await self.publish(fresh_items)
        except BaseException:
            self.known.difference_update(record_key(i) for i in fresh_items)
            raise
        # Only now, with Kafka's acknowledgement in hand, does the position move.
        if self.on_published is not None:
            self.on_published(fresh_items)
        self.cp.advance(seen, self.p.overlap)
        self.p.store.save(self.stream, self.cp)
        if self.cp.watermark is not None:
            telemetry.POLLER_WATERMARK.labels(stream=self.stream).set(self.cp.watermark.timestamp())

    async def publish(self, items: list[Any]) -> None:
        """Publish records (invalid ones are dead-lettered by accept() and count as handled)."""
        p = self.p
        by_format: dict[str, list[RawRecord]] = {}
        for i, item in enumerate(items):
            by_format.setdefault(record_format(self.stream, item), []).append(RawRecord(i, value=item))
        ctx = IngestContext(masker=p.masker, tenant=p.settings.tenant, install=p.settings.install)
        for fmt, records in by_format.items():
            result = await accept(p.publisher, fmt, records, ctx, origin=f"poller:{p.base}{PATHS[self.stream]}",
                                  source=self.source)
            self.published += result.accepted
        telemetry.POLLER_RECORDS.labels(stream=self.stream).inc(len(items))
