"""The Obot audit API poller: ``GET /api/mcp-audit-logs`` and ``GET /api/llm-audit-logs`` into Kafka.

Obot's list API filters ``created_at >= start_time AND created_at < end_time``, orders by
``created_at`` (ties in no stable order) and pages with ``limit`` + ``offset``; there is no
"after id" cursor. So each cycle, per stream:

1. reads the window ``[watermark - overlap, now)``: the overlap finds records Obot stored late
   (older ``createdAt`` than what was already seen), ``end_time = now`` keeps records arriving
   during the cycle from shifting the pages under it (they are read next cycle);
2. pages through it in ``created_at`` order, skipping ids already published (the checkpoint keeps
   the ids inside the overlap window, and ids seen earlier in the same cycle, so ties split across
   pages or shifted by an insert are neither lost nor published twice);
3. publishes each page's new records and waits for Kafka's acknowledgement, then advances and
   saves the checkpoint (atomically). A crash between the two can only publish a page again, with
   the same deterministic event ids.

Both shapes of MCP records are understood: flat (up to v0.23) and ``AuditLogEvent`` (v0.24+);
the shape is detected per record. Errors (HTTP, network, Kafka) back off exponentially with
jitter and retry from the last checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from gateledger import jsonutil
from gateledger.clock import to_utc, utcnow
from gateledger.contracts.envelope import utc_iso
from gateledger.ids import stable_id
from gateledger.masking import Masker
from producers import telemetry
from producers.accept import RawRecord, accept
from producers.formats import IngestContext
from producers.obot.checkpoint import CheckpointStore
from producers.obot.settings import ObotPollerSettings
from producers.publisher import Publisher, PublishError

log = logging.getLogger(__name__)

PATHS = {"mcp": "/api/mcp-audit-logs", "llm": "/api/llm-audit-logs"}


class PollError(RuntimeError):
    """The Obot API did not give a usable page (network error, non-200, not a page)."""


def record_format(stream: str, record: Any) -> str:
    """The producer format of one listed record."""
    if stream == "llm":
        return "obot-llm"
    if isinstance(record, dict) and (isinstance(record.get("timestamp"), dict) or "eventType" in record):
        return "obot-audit-event"
    return "obot-audit"


def record_time(record: Any) -> datetime | None:
    """The time Obot filters and sorts on (``created_at``): ``createdAt``, or ``timestamp.recordedAt``."""
    if not isinstance(record, dict):
        return None
    ts = record.get("timestamp")
    raw = (ts.get("recordedAt") or ts.get("occurredAt")) if isinstance(ts, dict) else record.get("createdAt")
    try:
        parsed = jsonutil.parse_time(raw)
    except (TypeError, ValueError):
        return None
    return to_utc(parsed) if parsed is not None else None


def record_key(record: Any) -> str:
    """The id the poller remembers a record by (Obot's id; a content hash if it has none)."""
    if isinstance(record, dict) and record.get("id") not in (None, ""):
        return str(record["id"])
    return "sha:" + stable_id(record)


class ObotPoller:
    """Polls one Obot installation's audit streams into Kafka."""

    def __init__(
        self,
        settings: ObotPollerSettings,
        publisher: Publisher,
        masker: Masker,
        data_dir: Path,
        *,
        clock: Callable[[], datetime] = utcnow,
        rng: random.Random | None = None,
    ) -> None:
        if not settings.url:
            raise ValueError("GATELEDGER_OBOT_URL is not set")
        self.settings = settings
        self.publisher = publisher
        self.masker = masker
        self.clock = clock
        self.rng = rng or random.Random()
        self.base = settings.url.rstrip("/")
        self.store = CheckpointStore(settings.checkpoint_dir or data_dir / "obot-poller", settings.install)
        self.overlap = timedelta(seconds=settings.overlap_s)

    # -- one page -----------------------------------------------------------------------------

    async def fetch_page(
        self, session: aiohttp.ClientSession, stream: str, params: dict[str, str]
    ) -> tuple[list[Any], int | None]:
        """One page of a stream and the total Obot reports; PollError when Obot does not give one."""
        headers = {"Accept": "application/json"}
        if self.settings.token is not None:
            headers["Authorization"] = f"Bearer {self.settings.token.get_secret_value()}"
        url = self.base + PATHS[stream]
        try:
            async with session.get(url, params=params, headers=headers) as resp:
                body = await resp.read()
                if resp.status != 200:
                    raise PollError(f"GET {PATHS[stream]} answered {resp.status}: {body[:300]!r}")
        except (aiohttp.ClientError, OSError, TimeoutError) as exc:
            raise PollError(f"GET {PATHS[stream]} failed: {exc!r}") from exc
        try:
            page = jsonutil.loads(body)
        except jsonutil.JSONDecodeError as exc:
            raise PollError(f"GET {PATHS[stream]} returned invalid JSON: {exc}") from exc
        items = page.get("items") if isinstance(page, dict) else None
        if not isinstance(items, list):
            raise PollError(f"GET {PATHS[stream]} returned no items list")
        total = page.get("total")
        return items, total if isinstance(total, int) else None

    # -- one cycle ----------------------------------------------------------------------------

    async def poll_stream(self, session: aiohttp.ClientSession, stream: str) -> int:
        """Read the stream's window to its end; returns how many records were published."""
        cycle = _Cycle(self, session, stream)
        return await cycle.run()

    # -- forever ------------------------------------------------------------------------------

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every stream each interval until ``stop``; back off on errors."""
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        failures = 0
        async with aiohttp.ClientSession(timeout=timeout) as session:
            while not stop.is_set():
                ok = True
                for stream in self.settings.streams:
                    try:
                        n = await self.poll_stream(session, stream)
                        if n:
                            log.info("obot poller: %d new %s record(s)", n, stream)
                    except PollError as exc:
                        ok = False
                        telemetry.POLLER_ERRORS.labels(stream=stream, kind="obot").inc()
                        log.warning("obot poller: %s", exc)
                    except PublishError as exc:
                        ok = False
                        telemetry.POLLER_ERRORS.labels(stream=stream, kind="kafka").inc()
                        log.warning("obot poller: Kafka unavailable, will retry: %s", exc)
                failures = 0 if ok else failures + 1
                delay = self.settings.interval_s if ok else self.backoff(failures)
                try:
                    await asyncio.wait_for(stop.wait(), delay)
                except TimeoutError:
                    pass

    def backoff(self, failures: int) -> float:
        """Exponential backoff with full jitter, between the configured bounds."""
        cap = min(self.settings.backoff_max_s, self.settings.backoff_min_s * 2 ** (failures - 1))
        return max(self.settings.backoff_min_s, self.rng.uniform(0, cap))


class _Cycle:
    """One pass over a stream's window (see the module docstring for why it pages this way).

    Obot orders ties (rows with one ``created_at``) in no stable order, so offsets are not a
    reliable cursor. Each page therefore starts at the time of the previous page's last row
    (re-reading that tie group, whose known rows are skipped); a tie group larger than a page is
    drained on its own (``[t, t + 1 µs)``) until as many distinct rows were seen as Obot counts.
    """

    MAX_GROUP_PASSES = 20

    def __init__(self, poller: ObotPoller, session: aiohttp.ClientSession, stream: str) -> None:
        self.p = poller
        self.session = session
        self.stream = stream
        self.cp = poller.store.load(stream)
        self.known: set[str] = set(self.cp.recent)
        self.published = 0
        self.now = poller.clock()
        self.source = f"obot-poller-{stream}"

    def params(self, start: datetime, end: datetime, offset: int = 0) -> dict[str, str]:
        return {
            "start_time": utc_iso(start),
            "end_time": utc_iso(end),
            "sort_by": "created_at",
            "sort_order": "asc",
            "limit": str(self.p.settings.page_size),
            "offset": str(offset),
        }

    async def run(self) -> int:
        p = self.p
        limit = p.settings.page_size
        wm = self.cp.watermark
        cursor = wm - p.overlap if wm else self.now - timedelta(seconds=p.settings.initial_lookback_s)
        while True:
            items, _ = await p.fetch_page(self.session, self.stream, self.params(cursor, self.now))
            await self.take(items)
            if len(items) < limit:
                return self.published
            times = [t for t in (record_time(i) for i in items) if t is not None]
            if not times:
                raise PollError(f"{PATHS[self.stream]}: a full page without createdAt; cannot page on")
            first, last = min(times), max(times)
            if first == last:
                await self.drain_group(last)
                cursor = last + _TICK
            else:
                cursor = last

    async def drain_group(self, t: datetime) -> None:
        """Read every row of one timestamp, however the server orders them."""
        group: set[str] = set()
        for _ in range(self.MAX_GROUP_PASSES):
            offset, total = 0, None
            while True:
                items, total = await self.p.fetch_page(
                    self.session, self.stream, self.params(t, t + _TICK, offset)
                )
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
        p = self.p
        seen: dict[str, datetime] = {}
        fresh: dict[str, list[RawRecord]] = {}
        for i, item in enumerate(items):
            key = record_key(item)
            if key in self.known:
                continue
            self.known.add(key)
            t = record_time(item)
            if t is not None:
                seen[key] = t
            fresh.setdefault(record_format(self.stream, item), []).append(RawRecord(i, value=item))
        if not fresh:
            return
        ctx = IngestContext(masker=p.masker, tenant=p.settings.tenant, install=p.settings.install)
        try:
            for fmt, records in fresh.items():
                # Invalid rows are dead-lettered by accept(); they count as handled.
                result = await accept(p.publisher, fmt, records, ctx, origin=f"poller:{p.base}{PATHS[self.stream]}",
                                      source=self.source)
                self.published += result.accepted
        except BaseException:
            self.known.difference_update(seen)
            raise
        # Only now, with Kafka's acknowledgement in hand, does the position move.
        self.cp.advance(seen, p.overlap)
        p.store.save(self.stream, self.cp)
        if self.cp.watermark is not None:
            telemetry.POLLER_WATERMARK.labels(stream=self.stream).set(self.cp.watermark.timestamp())
        telemetry.POLLER_RECORDS.labels(stream=self.stream).inc(sum(len(r) for r in fresh.values()))


_TICK = timedelta(microseconds=1)  # Obot stores created_at to the microsecond


async def run_poller(
    settings: Any = None, stop: asyncio.Event | None = None, poller_settings: ObotPollerSettings | None = None
) -> None:
    """Run the poller against the configured broker until ``stop`` is set."""
    from gateledger.kafka import ensure_gateledger_topics, resolve
    from gateledger.masking import masking_salt
    from gateledger.settings import Settings

    settings = settings or Settings()
    ps = poller_settings or ObotPollerSettings()
    stop = stop or asyncio.Event()
    target = resolve(settings.kafka, settings.core)
    await ensure_gateledger_topics(settings.kafka, target)
    masker = Masker(salt=masking_salt(settings.core.data_dir))
    async with Publisher(settings.kafka, target) as publisher:
        log.info("obot poller: %s (%s) -> Kafka", ps.url, ", ".join(ps.streams))
        await ObotPoller(ps, publisher, masker, settings.core.data_dir).run(stop)


def main() -> None:
    """Entry point: run until SIGTERM or SIGINT."""
    import signal

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_poller(stop=stop)

    asyncio.run(_main())
