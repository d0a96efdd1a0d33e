"""The AxonFlow audit poller: AxonFlow's own audit trail into Kafka, to reconcile it with the tap.

A client pointed at AxonFlow directly never passes the tap; AxonFlow still logs its calls. Each
cycle reads ``POST /api/v1/audit/search`` (getaxonflow/axonflow platform/orchestrator/run.go
auditSearchHandler and audit_logger.go SearchAuditLogs: ``timestamp >= start_time AND timestamp <=
end_time``, newest first, ``LIMIT limit``, no offset; the SDK's ``search_audit_logs`` reads a bare
list or ``{"entries": [...]}``) for the window ``[watermark - overlap, now - settle]``, paging by
moving ``end_time`` back to the oldest row read. It publishes the LLM-call rows and the gateway
pre-check rows (``axonflow-audit-entry``, keyed by ``request_id``: a gateway row's is the
pre-check's context id). The normalize stage turns the rows no tap exchange of the same context
preceded into ``untapped_llm_call`` findings, and the LLM calls among them into ``LlmCall`` s.

Checkpoint and loop shared with the Obot poller (``producers.polling``): ids inside the overlap
are remembered and skipped, the checkpoint is saved only after Kafka acknowledged the rows it
covers, so a crash can only publish a page again (same event ids), never skip one. Errors back
off exponentially with full jitter and retry from the checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp

from gateledger.clock import to_utc, utcnow
from gateledger.contracts.envelope import utc_iso
from gateledger.masking import Masker
from gateledger.signals import run_until_stopped
from producers.accept import RawRecord, accept
from producers.axonflow.settings import AxonFlowPollerSettings
from producers.accept import IngestContext
from producers.polling.checkpoint import CheckpointStore
from producers.polling.loop import PollLoop
from producers.publisher import Publisher, PublishError

log = logging.getLogger(__name__)

SEARCH_PATH = "/api/v1/audit/search"
STREAM = "audit"
SOURCE = "axonflow-poller"


class AuditPollError(RuntimeError):
    """AxonFlow did not give a usable page (network error, non-200, not a list of entries)."""


def is_reconciled(entry: Any) -> bool:
    """A row the tap may have seen: an LLM call (a provider and a model: audit_logger.go
    LogSuccessfulRequest) or a gateway pre-check verdict (``plane: "gateway"``: gateway_handlers.go
    recordGatewayPreCheckAudit), not a /decide, MCP or admin row."""
    if not isinstance(entry, dict):
        return False
    kind = str(entry.get("request_type") or "")
    return kind.startswith("llm") or bool(entry.get("provider") and entry.get("model")) \
        or entry.get("plane") == "gateway"


def page_entries(body: Any) -> list[Any]:
    """The entries of a search answer: a bare list (older agents) or ``{"entries": [...]}``."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get("entries"), list):
        return body["entries"]
    raise AuditPollError(f"not an audit search answer: {str(body)[:200]}")


class AxonFlowAuditPoller:
    """Reads AxonFlow's audit trail page by page, publishes LLM rows, keeps a checkpoint."""

    def __init__(self, settings: AxonFlowPollerSettings, publisher: Publisher, masker: Masker,
                 session: aiohttp.ClientSession, checkpoint_dir: Path, default_tenant: str = "default") -> None:
        if not settings.url:
            raise ValueError("GATELEDGER_AXONFLOW_URL is not set")
        self.s = settings
        self.publisher = publisher
        self.masker = masker
        self.session = session
        self.store = CheckpointStore(checkpoint_dir, "axonflow")
        self.tenant = settings.tenant or default_tenant
        secret = settings.client_secret.get_secret_value() if settings.client_secret else ""
        # AxonFlow's Basic client_id:secret (it derives the tenant from the client id).
        self.headers = {"Authorization": aiohttp.encode_basic_auth(settings.client_id, secret)} \
            if settings.client_id else {}

    async def _page(self, start: datetime, end: datetime) -> list[Any]:
        # No offset: run.go's auditSearchHandler decodes none (user_email, client_id, start_time,
        # end_time, request_type, limit), so pages are cut by end_time instead (newest first).
        body = {"start_time": utc_iso(start), "end_time": utc_iso(end), "limit": self.s.page_size}
        try:
            async with self.session.post(f"{self.s.url.rstrip('/')}{SEARCH_PATH}", json=body, headers=self.headers,
                                         timeout=aiohttp.ClientTimeout(total=self.s.timeout_s)) as r:
                if r.status != 200:
                    raise AuditPollError(f"{SEARCH_PATH} answered {r.status}: {(await r.text())[:200]}")
                return page_entries(await r.json(content_type=None))
        except (aiohttp.ClientError, TimeoutError, ValueError) as exc:
            raise AuditPollError(f"{SEARCH_PATH}: {exc.__class__.__name__}: {exc}") from exc

    async def poll_once(self, now: datetime | None = None) -> int:
        """One cycle over the window; returns how many rows were published."""
        now = to_utc(now or utcnow())
        cp = self.store.load(STREAM)
        overlap = timedelta(seconds=self.s.overlap_s)
        start = cp.watermark - overlap if cp.watermark else now - timedelta(seconds=self.s.initial_lookback_s)
        end = now - timedelta(seconds=self.s.settle_s)
        if end <= start:
            return 0
        fresh: dict[str, tuple[datetime, dict[str, Any]]] = {}
        page_end, read = end, set()
        while True:
            entries = await self._page(start, page_end)
            oldest, new = None, 0
            for e in entries:
                if not isinstance(e, dict) or e.get("id") in (None, "") or str(e["id"]) in read:
                    continue
                key, t = str(e["id"]), self._time(e)
                read.add(key)
                new += 1
                if t is not None:
                    oldest = t if oldest is None else min(oldest, t)
                    # Checked here too: the stored SearchAuditLogs (audit_logger.go) asserts its
                    # criteria to a struct type the handler's tagged struct is not, so such a server
                    # applies no time filter and no limit.
                    if start <= t <= page_end and is_reconciled(e) and key not in cp.recent:
                        fresh[key] = (t, e)
            if len(entries) != self.s.page_size:
                break  # fewer: the window's end; more: the server applied no limit, this was all of it
            if not new or oldest is None:
                # A full page of rows already read: at least a page of rows share one timestamp, and
                # without an offset the ones past the page cannot be reached.
                raise AuditPollError(f"{self.s.page_size} or more audit rows at {utc_iso(page_end)}: "
                                     "raise GATELEDGER_AXONFLOW_PAGE_SIZE")
            page_end = oldest  # end_time is inclusive: rows at that instant are read again and skipped
        if fresh:
            ctx = IngestContext(masker=self.masker, tenant=self.tenant, received_at=utcnow(),
                                tenant_locked=self.s.tenant is not None)
            records = [RawRecord(i, value=e) for i, (_, e) in enumerate(sorted(fresh.values(), key=lambda x: x[0]))]
            await accept(self.publisher, "axonflow-audit-entry", records, ctx, origin=f"poller:{SEARCH_PATH}",
                         source=SOURCE)
        cp.advance({k: t for k, (t, _) in fresh.items()}, overlap)
        self.store.save(STREAM, cp)
        return len(fresh)

    @staticmethod
    def _time(entry: dict[str, Any]) -> datetime | None:
        try:
            return to_utc(datetime.fromisoformat(str(entry.get("timestamp")).replace("Z", "+00:00")))
        except ValueError:
            return None

    async def cycle(self) -> bool:
        """One poll; False when AxonFlow or Kafka failed (the loop backs off and retries from the checkpoint)."""
        try:
            await self.poll_once()
            return True
        except (AuditPollError, PublishError) as exc:
            log.warning("AxonFlow audit poll failed, retrying from the checkpoint: %s", exc)
            return False

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval_s`` until ``stop``; failures back off (exponential, full jitter)."""
        await PollLoop(self.s.interval_s, self.s.backoff_min_s, self.s.backoff_max_s).run(stop, self.cycle)


async def run_poller(settings: Any = None, stop: asyncio.Event | None = None,
                     poller_settings: AxonFlowPollerSettings | None = None) -> None:
    """Run the AxonFlow audit poller against the configured broker until ``stop`` is set."""
    from gateledger.kafka import ensure_gateledger_topics, resolve
    from gateledger.masking import masking_salt
    from gateledger.settings import Settings

    settings = settings or Settings()
    ps = poller_settings or AxonFlowPollerSettings()
    stop = stop or asyncio.Event()
    target = resolve(settings.kafka, settings.core)
    await ensure_gateledger_topics(settings.kafka, target)
    masker = Masker(salt=masking_salt(settings.core.data_dir))
    directory = ps.checkpoint_dir or settings.core.data_dir / "axonflow-poller"
    async with Publisher(settings.kafka, target) as publisher, aiohttp.ClientSession() as session:
        log.info("AxonFlow audit poller: %s%s -> Kafka", ps.url, SEARCH_PATH)
        await AxonFlowAuditPoller(ps, publisher, masker, session, directory).run(stop)


def main() -> None:
    """Entry point: run until SIGTERM or SIGINT."""
    run_until_stopped(lambda stop: run_poller(stop=stop))
