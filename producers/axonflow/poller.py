"""The AxonFlow audit poller: AxonFlow's own audit trail into Kafka, to reconcile it with the tap.

A client pointed at AxonFlow directly never passes the tap; AxonFlow still logs its calls. Each
cycle reads ``POST /api/v1/audit/search`` (getaxonflow/axonflow platform/orchestrator/run.go,
auditSearchHandler; filters ``timestamp >= start_time AND timestamp <= end_time``, newest first,
``limit`` + ``offset`` pages: audit_logger.go SearchAuditLogs and the SDK's
``search_audit_logs``) for the window ``[watermark - overlap, now - settle]`` and publishes the
LLM rows (``axonflow-audit-entry``, keyed by the pre-check's context id). The normalize stage
finds the rows no tap exchange of the same context preceded: ``untapped_llm_call`` findings.

Checkpoint discipline as the Obot poller's (``producers.obot.checkpoint``): ids inside the overlap
are remembered and skipped, the checkpoint is saved only after Kafka acknowledged the rows it
covers, so a crash can only publish a page again (same event ids), never skip one. Errors back
off exponentially with jitter and retry from the checkpoint.
"""

from __future__ import annotations

import asyncio
import logging
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from tenacity import wait_random_exponential

from gateledger.clock import to_utc, utcnow
from gateledger.contracts.envelope import utc_iso
from gateledger.masking import Masker
from producers.accept import RawRecord, accept
from producers.formats import IngestContext
from producers.axonflow.settings import AxonFlowPollerSettings
from producers.obot.checkpoint import CheckpointStore
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

    async def _page(self, start: datetime, end: datetime, offset: int) -> list[Any]:
        body = {"start_time": utc_iso(start), "end_time": utc_iso(end), "limit": self.s.page_size, "offset": offset}
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
        offset = 0
        while True:
            entries = await self._page(start, end, offset)
            for e in entries:
                if not is_reconciled(e) or e.get("id") in (None, ""):
                    continue
                key, t = str(e["id"]), self._time(e)
                if t is not None and key not in cp.recent:
                    fresh[key] = (t, e)
            if len(entries) < self.s.page_size:
                break
            offset += len(entries)
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

    async def run(self, stop: asyncio.Event) -> None:
        """Poll every ``interval_s`` until ``stop``; failures back off (exponential, jittered)."""
        backoff = wait_random_exponential(multiplier=self.s.backoff_min_s, max=self.s.backoff_max_s)
        failures = 0
        while not stop.is_set():
            try:
                await self.poll_once()
                failures, pause = 0, self.s.interval_s
            except (AuditPollError, PublishError) as exc:
                failures += 1
                pause = backoff(_Attempt(failures))
                log.warning("AxonFlow audit poll failed (%d in a row), retrying in %.1fs: %s", failures, pause, exc)
            try:
                await asyncio.wait_for(stop.wait(), pause)
            except TimeoutError:
                pass


class _Attempt:
    """The one attribute tenacity's wait strategies read from a retry state."""

    def __init__(self, number: int) -> None:
        self.attempt_number = number


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
    import signal

    async def _main() -> None:
        stop = asyncio.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            asyncio.get_running_loop().add_signal_handler(sig, stop.set)
        await run_poller(stop=stop)

    asyncio.run(_main())
