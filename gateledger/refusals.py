"""Refusals without a trusted body, accounted for in dead letters that a flood cannot make unbounded.

Every HTTP door (the ingest routes, the AxonFlow tap, the notifier's ``/alertmanager``) refuses some
requests before it knows who sent them or before it has read their body: 401 (``unauthenticated``,
``bad_signature``), 408 ``body_timeout``, 429 (``rate_limited``, ``concurrency_limited``), a
stranger's ``bad_header``, a URL naming nothing (``not_found``), an oversized body left unread. A
compliance record must account for each, yet a stranger or a flood must not be able to write
unbounded data to Kafka. So these refusals are counted here per (origin, reason, status, caller
address, tenant when the caller is authenticated) and written once per window as ONE dead letter:
``count`` requests between ``first_at`` and ``last_at``, the header names seen (never their values),
no body. Per window there are at most ``max_keys`` letters plus one overflow letter (origin and caller
``*``) per reason and status, whatever the flood's size. A failed write keeps the counts for the next
window (the same letter id with a higher version: ClickHouse keeps the newest, so nothing is counted
twice), and ``close()`` writes what is left when the service stops.

Some requests never reach a handler: aiohttp's HTTP parser answers a malformed request line or header
400 itself (and an ``Expect`` other than ``100-continue`` 417). Each door's application observes those
through aiohttp's access-log hook (``handler_args``: ``unrouted_refusals``), counting them here as
``bad_request`` with origin ``<door>:aiohttp``; a request that did reach the door carries ``REACHED``.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
import uuid
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any
from dataclasses import dataclass, field
from datetime import datetime

from aiohttp import web
from aiohttp.abc import AbstractAccessLogger

from gateledger.clock import Clock, utcnow
from gateledger.contracts.events import DeadLetter
from gateledger.ids import LEGACY_TENANT, tenant_id
from gateledger.masking import Masker

log = logging.getLogger(__name__)

Send = Callable[[Sequence[DeadLetter]], Awaitable[None]]
# aiohttp's own refusals (no route, wrong method, a body over client_max_size) as reason codes, on
# every door (docs/ingest.md "Refusals"); any other 4xx it raises is ``bad_request``.
AIOHTTP_REASONS = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}
OVERFLOW = "*"
MAX_HEADER_NAMES = 32
MAX_NAME_CHARS = 64
_EMPTY_SHA256 = hashlib.sha256(b"").hexdigest()


def header_names(names: Iterable[str]) -> list[str]:
    """Header names as recorded: visible ASCII only, cut short, de-duplicated (values are never kept)."""
    out: dict[str, None] = {}
    for name in names:
        clean = "".join(c if " " < c < "\x7f" else "?" for c in name[:MAX_NAME_CHARS]).lower()
        out.setdefault(clean, None)
        if len(out) >= MAX_HEADER_NAMES:
            break
    return list(out)


@dataclass
class _Tally:
    nonce: str
    message: str
    first: datetime
    last: datetime
    count: int = 0
    attempts: int = 0
    names: dict[str, None] = field(default_factory=dict)

    def absorb(self, other: _Tally) -> None:
        self.count += other.count
        self.first, self.last = min(self.first, other.first), max(self.last, other.last)
        for n in other.names:
            if len(self.names) < MAX_HEADER_NAMES:
                self.names.setdefault(n, None)


Key = tuple[str, str, int, str, str]  # origin, reason, status, caller, tenant ("" when unknown)


class RefusalRecorder:
    """Counts refusals per caller and window and writes each group as one dead letter (see the module)."""

    def __init__(self, *, stage: str, masker: Masker, send: Send, window_s: float = 10.0, max_keys: int = 1000,
                 clock: Clock = utcnow) -> None:
        self.stage = stage
        self.masker = masker
        self.send = send
        self.window_s = window_s
        self.max_keys = max(1, max_keys)
        self.clock = clock
        self._tallies: dict[Key, _Tally] = {}
        self._timer: asyncio.Task[None] | None = None
        self._lock = asyncio.Lock()
        self.recorded = 0  # refusals counted
        self.written = 0  # refusals in letters Kafka acknowledged

    @property
    def pending(self) -> int:
        """Refusals counted and not yet written."""
        return sum(t.count for t in self._tallies.values())

    def record(self, *, origin: str, reason: str, status: int, message: str, caller: str | None,
               tenant: str | None = None, names: Iterable[str] = ()) -> None:
        """Count one refused request (never blocks, never raises)."""
        key: Key = (origin, reason, status, caller or "", tenant or "")
        tally = self._tallies.get(key)
        if tally is None and len(self._tallies) >= self.max_keys:
            # A flood from many addresses: one letter per reason and status from here on.
            key = (OVERFLOW, reason, status, OVERFLOW, "")
            tally = self._tallies.get(key)
        now = self.clock()
        if tally is None:
            tally = self._tallies[key] = _Tally(uuid.uuid4().hex, message[:500], now, now)
        tally.count += 1
        tally.last = now
        if len(tally.names) < MAX_HEADER_NAMES:
            for n in header_names(names):
                tally.names.setdefault(n, None)
                if len(tally.names) >= MAX_HEADER_NAMES:
                    break
        self.recorded += 1
        self._schedule()

    def _schedule(self) -> None:
        if self._timer is not None and not self._timer.done():
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # no loop (a synchronous caller): close() writes it
            return
        self._timer = loop.create_task(self._later(), name=f"refusals-{self.stage}")

    async def _later(self) -> None:
        await asyncio.sleep(self.window_s)
        self._timer = None
        # Shielded: close() cancelling the timer mid-write must not lose the counts being written.
        await asyncio.shield(self.flush())
        if self._tallies:
            self._schedule()  # the write failed: try again next window

    async def flush(self) -> int:
        """Write every group counted so far; the number of refusals written (0 when Kafka refused)."""
        async with self._lock:
            if not self._tallies:
                return 0
            batch, self._tallies = self._tallies, {}
            letters = [self._letter(key, t) for key, t in batch.items()]
            try:
                await self.send(letters)
            except Exception as exc:  # noqa: BLE001 - any failure of the write: keep the counts, retry
                for key, t in batch.items():
                    newer = self._tallies.get(key)
                    if newer is not None:
                        t.absorb(newer)
                    self._tallies[key] = t
                log.warning("%d refusal(s) not yet written as dead letters, retrying: %s", self.pending, exc)
                return 0
            done = sum(t.count for t in batch.values())
            self.written += done
            return done

    async def close(self) -> None:
        """Write what is left (at shutdown): every refusal counted is in a letter, or logged as lost."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        await self.flush()
        if self._tallies:
            log.error("%d refusal(s) could not be written as dead letters at shutdown: %s", self.pending,
                      {k[:3]: t.count for k, t in self._tallies.items()})

    def _letter(self, key: Key, t: _Tally) -> DeadLetter:
        origin, reason, status, caller, tenant = key
        t.attempts += 1
        span = f"{t.first.isoformat()} .. {t.last.isoformat()}"
        return DeadLetter(
            id=tenant_id(tenant or LEGACY_TENANT, "refusals", self.stage, origin, reason, status, caller, t.nonce),
            version=t.attempts,  # a re-write after a failure carries the larger count: the newest wins
            tenant=tenant or "unknown",
            time=t.first,
            stage=self.stage,  # type: ignore[arg-type]
            origin=origin,
            reason=reason,
            error=self.masker.mask_text(f"{t.count} request(s) refused with {status} ({span}): {t.message}")[:4000],
            original="",
            original_sha256=_EMPTY_SHA256,
            original_size=0,
            details=self.masker.mask({"coalesced": True, "header_names": list(t.names), "window_s": self.window_s}),
            http_status=status,
            caller=caller or None,
            count=t.count,
            first_at=t.first,
            last_at=t.last,
        )


# Set on every request that reached a door's middlewares (which account for their own refusals).
REACHED = web.RequestKey("gateledger_reached", bool)


def mark_reached(request: web.BaseRequest) -> None:
    """Say the door's own middleware saw this request (its refusal, if any, is counted there)."""
    request[REACHED] = True


def unrouted_refusals(recorder: Callable[[], RefusalRecorder | None], door: str) -> dict[str, Any]:
    """``web.Application(handler_args=...)`` counting what aiohttp refuses before any middleware runs.

    aiohttp calls its access logger for every answer it writes, including the 400 its HTTP parser
    gives a malformed request (aiohttp/web_protocol.py: the parser's error becomes an ``_ErrInfo``
    request whose handler is ``handle_error``; ``finish_response`` then calls ``log_access``) and
    the 417 of an unknown ``Expect``. The logger class is the public hook (``access_log_class``); a
    4xx answer to a request without ``REACHED`` is one of those. ``recorder`` is looked up per
    answer (the door's recorder may be made after its application)."""

    class UnroutedRefusals(AbstractAccessLogger):
        def log(self, request: web.BaseRequest, response: web.StreamResponse, time: float) -> None:
            status = response.status
            if not 400 <= status < 500 or request.get(REACHED):
                return
            target = recorder()
            if target is None:
                return
            text = getattr(response, "text", None) or response.reason or ""
            target.record(origin=f"{door}:aiohttp", reason=AIOHTTP_REASONS.get(status, "bad_request"),
                          status=status, message=f"refused by aiohttp before any handler: {text}",
                          caller=request.remote, names=request.headers.keys())

    # access_log must be a logger for aiohttp to call the class; nothing is written to it.
    return {"access_log_class": UnroutedRefusals, "access_log": logging.getLogger("aiohttp.access")}
