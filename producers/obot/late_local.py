"""The local-agent late sweep: tool calls whose client-reported time lies behind the main window.

On v0.24+ the mixed MCP list filters local-agent rows by ``occurred_at``, which the device reports
(obot-platform/obot ``pkg/gateway/client/mcpauditlog.go``, ``effectiveAuditLogTimeSQL``: "a
skewed or hostile client can position its local-agent events anywhere in the merged timeline").
A device that was offline, or whose clock is behind, reports calls Obot records now with an
``occurredAt`` the main window has passed. Obot's own clock is ``created_at`` (``recordedAt``),
and a local-agent-only list may sort by it (``localAgentAuditLogSortColumns``), so this sweep reads
``event_type=local_agent_tool_call&sort_by=created_at&sort_order=desc`` from the newest record
down to ``recorded watermark - overlap`` and publishes what the main window can no longer see:

- a row whose ``occurredAt`` is at or after the main window's start is left to the main window
  (which reads it now or, if it lies in the future, once ``now`` passes it);
- the main window records every local-agent row it publishes in this sweep's checkpoint (by
  ``recordedAt``), so a row is published by one pass only;
- the recorded-time watermark is saved only when the sweep reached its floor: a crash half-way
  cannot move it past rows not yet read. New rows arriving while it pages push older rows to
  higher offsets, so they are read again (and skipped), never missed.

An API key without local-agent access gets 403 (``authorizeAuditLogSources`` in
``pkg/api/handlers/mcpgateway/auditlog.go``): the sweep then has nothing to do.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import TYPE_CHECKING, Any

from producers.obot.api import ObotApi
from producers.obot.window import Enrich, WindowPass, parse_utc, record_key, record_time

if TYPE_CHECKING:
    from producers.obot.poller import ObotPoller

STREAM = "local"  # checkpoint name
LOCAL = "local_agent_tool_call"
SORT = {"event_type": LOCAL, "sort_by": "created_at", "sort_order": "desc"}


def recorded_at(record: Any) -> datetime | None:
    """Obot's own time for a record (``timestamp.recordedAt``)."""
    ts = record.get("timestamp") if isinstance(record, dict) else None
    return parse_utc(ts.get("recordedAt")) if isinstance(ts, dict) else None


def is_local(record: Any) -> bool:
    """A local-agent tool call (``eventType``, apiclient/types/auditlogevent.go)."""
    return isinstance(record, dict) and record.get("eventType") == LOCAL


def remember_published(poller: ObotPoller, items: list[Any]) -> None:
    """Called by the main window after Kafka acknowledged: its local-agent rows are taken."""
    seen = {record_key(i): t for i in items if is_local(i) and (t := recorded_at(i)) is not None}
    if seen:
        cp = poller.store.load(STREAM)
        cp.remember(seen, poller.overlap)
        poller.store.save(STREAM, cp)


async def sweep(poller: ObotPoller, api: ObotApi, enrich: Enrich | None) -> int:
    """One late sweep; returns how many records it published."""
    cp = poller.store.load(STREAM)
    main = poller.store.load("mcp")
    now = poller.clock()
    lookback = timedelta(seconds=poller.settings.initial_lookback_s)
    floor = cp.watermark - poller.overlap if cp.watermark else now - lookback
    main_start = main.watermark - poller.overlap if main.watermark else now - lookback
    writer = WindowPass(poller, api, "mcp", SORT, enrich)
    limit = poller.settings.page_size
    newest: datetime | None = None
    offset, published = 0, 0
    while True:
        items, _ = await api.page("mcp", {**SORT, "limit": str(limit), "offset": str(offset)})
        offset += len(items)
        fresh, seen, reached_floor = [], {}, False
        for item in items:
            r = recorded_at(item)
            if r is None or r < floor:
                reached_floor = reached_floor or r is not None
                continue
            newest = r if newest is None or r > newest else newest
            occurred = record_time(item)
            if record_key(item) in cp.recent or (occurred is not None and occurred >= main_start):
                continue
            fresh.append(item)
            seen[record_key(item)] = r
        if fresh:
            if enrich is not None:
                fresh = await enrich(fresh)
            before = writer.published
            await writer.publish(fresh)
            published += writer.published - before
            cp.remember(seen, poller.overlap)
            poller.store.save(STREAM, cp)
        if reached_floor or len(items) < limit:
            break
    if newest is not None:
        cp.watermark = max(newest, cp.watermark) if cp.watermark else newest
        cp.remember({}, poller.overlap)
        poller.store.save(STREAM, cp)
    return published
