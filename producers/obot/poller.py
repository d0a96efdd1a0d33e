"""The Obot audit API poller: ``GET /api/mcp-audit-logs`` and ``GET /api/llm-audit-logs`` into Kafka.

What it asks depends on the Obot version line (facts from obot-platform/obot; see docs/ingest.md):

- **up to v0.23**: flat MCP records, ``sort_by=created_at``, ties in no stable order
  (``pkg/gateway/client/mcpauditlog.go`` at v0.23.0). There is no LLM audit list: the route is a
  404 (``pkg/api/router/router.go``), which the poller takes as "not on this version" (no error,
  no backoff; it asks again every ``probe_interval_s``).
- **v0.24 and later**: ``AuditLogEvent`` records; for an admin or auditor key the list mixes MCP
  calls and local-agent tool calls (``pkg/api/handlers/mcpgateway/auditlog.go``,
  ``defaultAuditLogSources``), which accepts only ``sort_by`` = ``timestamp`` / ``event_type`` /
  ``duration`` (anything else is a 400), filters and orders by ``occurredAt`` and breaks ties by
  ``id``. List items carry no ``details``: each new record's detail is fetched
  (``/api/mcp-audit-logs/detail/{id}``, bounded concurrency, cached, counted). Local-agent rows
  reported late by their device are found by the late sweep (``producers/obot/late_local.py``).

The version line is detected (``GATELEDGER_OBOT_API=auto``: whether ``/api/llm-audit-logs``
exists) or set. Paging and the checkpoint are in ``producers/obot/window.py``. Errors (HTTP other
than those 404s, network, Kafka) back off exponentially with jitter and retry from the checkpoint;
a 401 is an error like any other, never a quiet empty result.
"""

from __future__ import annotations

import asyncio
import logging
import random
import time
from collections.abc import Callable
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from gateledger.clock import utcnow
from gateledger.masking import Masker
from gateledger.signals import run_until_stopped
from producers import telemetry
from producers.obot import late_local
from producers.obot.api import ApiShape, DetailCache, EndpointMissing, ObotApi, PollError, with_details
from producers.obot.settings import ObotPollerSettings
from producers.obot.window import WindowPass, record_format, record_key, record_time
from producers.polling.checkpoint import CheckpointStore
from producers.polling.loop import PollLoop
from producers.publisher import Publisher, PublishError

log = logging.getLogger(__name__)

__all__ = ["ObotPoller", "PollError", "main", "record_format", "record_key", "record_time", "run_poller"]

# pkg/gateway/client/mcpauditlog.go: the sort each version line accepts for the MCP list.
SORT: dict[ApiShape, dict[str, str]] = {
    "flat": {"sort_by": "created_at", "sort_order": "asc"},
    "event": {"sort_by": "timestamp", "sort_order": "asc"},
}
LLM_SORT = {"sort_by": "created_at", "sort_order": "asc"}  # pkg/gateway/client/llmauditlog.go


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
        monotonic: Callable[[], float] | None = None,
    ) -> None:
        if not settings.url:
            raise ValueError("GATELEDGER_OBOT_URL is not set")
        self.settings = settings
        self.publisher = publisher
        self.masker = masker
        self.clock = clock
        self.rng = rng or random.Random()
        self.loop = PollLoop(settings.interval_s, settings.backoff_min_s, settings.backoff_max_s, self.rng)
        self.monotonic = monotonic or time.monotonic
        self.base = settings.url.rstrip("/")
        self.store = CheckpointStore(settings.checkpoint_dir or data_dir / "obot-poller", settings.install)
        self.overlap = timedelta(seconds=settings.overlap_s)
        self.shape: ApiShape | None = None if settings.api == "auto" else settings.api
        self.cache = DetailCache(settings.detail_cache_size)
        # Streams Obot does not have (404), with when to ask again.
        self.absent: dict[str, float] = {}
        self.local_sweep = True

    def api(self, session: aiohttp.ClientSession) -> ObotApi:
        """The HTTP client for this installation."""
        token = self.settings.token.get_secret_value() if self.settings.token is not None else None
        return ObotApi(self.base, token, session)

    async def detect(self, api: ObotApi) -> ApiShape:
        """The version line (once; again after a 400 or when an absent stream is probed)."""
        if self.shape is None:
            self.shape = await api.shape()
            log.info("obot poller: %s answers as %s", self.base,
                     "v0.24 or later" if self.shape == "event" else "v0.23 or earlier")
        return self.shape

    async def enrich(self, api: ObotApi, items: list[Any]) -> list[Any]:
        """v0.24+ list items with their details, when configured."""
        if not self.settings.fetch_details:
            return items
        return await with_details(api, items, self.cache, self.settings.detail_concurrency)

    async def poll_stream(self, session: aiohttp.ClientSession, stream: str) -> int:
        """Read the stream's window to its end; returns how many records were published."""
        api = self.api(session)
        shape = await self.detect(api)
        if stream == "llm":
            if shape == "flat" and self.settings.api == "auto" and stream in self.absent:
                self.shape = None  # time to ask again: Obot may have been upgraded
                shape = await self.detect(api)
            if shape == "flat":
                raise EndpointMissing("Obot before v0.24 has no LLM audit log (/api/llm-audit-logs is 404)", 404)
            return await WindowPass(self, api, "llm", LLM_SORT).run()
        if shape == "flat":
            return await WindowPass(self, api, "mcp", SORT["flat"]).run()

        async def enrich(items: list[Any]) -> list[Any]:
            return await self.enrich(api, items)

        n = await WindowPass(self, api, "mcp", SORT["event"], enrich,
                             on_published=lambda items: late_local.remember_published(self, items)).run()
        if self.local_sweep:
            try:
                n += await late_local.sweep(self, api, enrich)
            except PollError as exc:
                if exc.status != 403:
                    raise
                # A key without local-agent access: Obot shows it MCP calls only; nothing to sweep.
                self.local_sweep = False
                log.info("obot poller: this API key may not read local-agent audit logs; late sweep off")
        return n

    # -- forever ------------------------------------------------------------------------------

    async def cycle(self, session: aiohttp.ClientSession) -> bool:
        """Every stream once; False when one failed (the caller backs off)."""
        ok = True
        for stream in self.settings.streams:
            if self.absent.get(stream, 0.0) > self.monotonic():
                continue
            try:
                n = await self.poll_stream(session, stream)
                if n:
                    log.info("obot poller: %d new %s record(s)", n, stream)
                self.absent.pop(stream, None)
                telemetry.POLLER_ENDPOINT.labels(stream=stream).set(1)
            except EndpointMissing as exc:
                if stream != "llm":
                    ok = False  # the MCP list exists in every version: a 404 is a wrong URL
                    telemetry.POLLER_ERRORS.labels(stream=stream, kind="obot").inc()
                    log.warning("obot poller: %s (is GATELEDGER_OBOT_URL right?)", exc)
                    continue
                # Not on this version: no error, no backoff; ask again later (Obot may be upgraded).
                if stream not in self.absent:
                    log.info("obot poller: %s; asking again every %.0f s", exc, self.settings.probe_interval_s)
                self.absent[stream] = self.monotonic() + self.settings.probe_interval_s
                telemetry.POLLER_ENDPOINT.labels(stream=stream).set(0)
            except PollError as exc:
                if stream == "llm" and exc.status == 403:
                    # pkg/api/authz/authz.go: the LLM list is for admins and auditors; this key is
                    # neither. Not a failure to back off from; asked again every probe interval.
                    if stream not in self.absent:
                        log.warning("obot poller: %s; the API key may not read LLM audit logs", exc)
                    self.absent[stream] = self.monotonic() + self.settings.probe_interval_s
                    telemetry.POLLER_ENDPOINT.labels(stream=stream).set(0)
                    continue
                ok = False
                if exc.status == 400 and self.settings.api == "auto":
                    self.shape = None  # Obot may have been upgraded under us: detect again
                telemetry.POLLER_ERRORS.labels(stream=stream, kind="obot").inc()
                log.warning("obot poller: %s", exc)
            except PublishError as exc:
                ok = False
                telemetry.POLLER_ERRORS.labels(stream=stream, kind="kafka").inc()
                log.warning("obot poller: Kafka unavailable, will retry: %s", exc)
        return ok

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every stream each interval until ``stop``; back off on errors."""
        timeout = aiohttp.ClientTimeout(total=self.settings.timeout_s)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            await self.loop.run(stop, lambda: self.cycle(session))

    def backoff(self, failures: int) -> float:
        """The wait after ``failures`` failed cycles in a row (``PollLoop.backoff``)."""
        return self.loop.backoff(failures)


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
    run_until_stopped(lambda stop: run_poller(stop=stop))
