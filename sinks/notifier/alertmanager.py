"""``POST /alertmanager``: Alertmanager's webhook (payload version 4) relayed to the notifier's webhooks.

Alertmanager posts a notification per alert group (``groupKey``) when it fires, changes or resolves,
and again every ``repeat_interval`` while it lasts; an HA pair posts each twice. The relay
delivers each *distinct* notification once per webhook:

* dedup key = SHA-256 over ``groupKey``, ``status`` and, for every alert, its fingerprint, status and
  ``startsAt`` (so the same alert firing again later, e.g. a budget exceeded again next period, is
  news; a repeat of an unchanged group is not);
* per webhook: already in the sent store (compacted ``notifier.sent``, shared with budget alerts,
  keys ``am:<hex>``) → skipped; else POSTed with the notifier's backoff (Retry-After honoured) for
  up to ``alertmanager_deliver_within_s``, then recorded;
* answer 200 when every webhook has it (or refused it for good: dead letter, reason
  ``webhook_rejected``); otherwise 503, so Alertmanager retries the notification later — its own
  retry loop and notification log are the durable queue — and webhooks that already have it are
  not sent it again. Concurrent duplicates wait for each other (one lock per key).

Bad bodies get 400 and a dead letter (``invalid_alertmanager_payload``); bodies over
``alertmanager_max_body_bytes`` 413 and a dead letter (``too_large``, the first 64 KiB). Refusals that
keep no body (401 ``unauthenticated``, 408 ``body_timeout``, 429) are coalesced: one dead letter per
caller, reason and window with a count (gateledger/refusals.py).
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import math
import time
from collections.abc import Callable
from datetime import datetime
from typing import Any, Literal

import aiohttp
from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from gateledger import jsonutil
from gateledger.deadletter import make_dead_letter
from gateledger.httpheaders import same_secret
from gateledger.masking import Masker
from gateledger.ratelimit import Limiter
from gateledger.refusals import RefusalRecorder
from sinks.notifier import telemetry
from sinks.notifier.delivery import post_with_backoff
from sinks.notifier.sent_store import KafkaSentStore
from sinks.notifier.settings import NotifierSettings, WebhookTarget

log = logging.getLogger(__name__)

SOURCE = "alertmanager"


class AmAlert(BaseModel):
    """One alert of a notification."""

    model_config = ConfigDict(extra="allow")

    status: Literal["firing", "resolved"]
    labels: dict[str, str]
    annotations: dict[str, str] = Field(default_factory=dict)
    startsAt: datetime  # noqa: N815 (Alertmanager's field names)
    endsAt: datetime | None = None  # noqa: N815
    generatorURL: str = ""  # noqa: N815
    fingerprint: str = Field(min_length=1)


class AmNotification(BaseModel):
    """Alertmanager's webhook payload, version 4."""

    model_config = ConfigDict(extra="allow")

    version: Literal["4"]
    groupKey: str  # noqa: N815
    truncatedAlerts: int = 0  # noqa: N815
    status: Literal["firing", "resolved"]
    receiver: str
    groupLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonLabels: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    commonAnnotations: dict[str, str] = Field(default_factory=dict)  # noqa: N815
    externalURL: str = ""  # noqa: N815
    alerts: list[AmAlert] = Field(min_length=1)

    def dedup_key(self) -> str:
        """``am:`` + hex SHA-256 of group key, status and each alert's (fingerprint, status, startsAt)."""
        parts = sorted(f"{a.fingerprint}/{a.status}/{a.startsAt.isoformat()}" for a in self.alerts)
        digest = hashlib.sha256("\n".join([self.groupKey, self.status, *parts]).encode()).hexdigest()
        return f"am:{digest[:40]}"

    def summary(self) -> str:
        """One line for people."""
        first = self.alerts[0]
        text = (self.commonAnnotations.get("summary") or first.annotations.get("summary")
                or self.commonLabels.get("alertname") or first.labels.get("alertname", "alert"))
        more = f" (+{len(self.alerts) - 1} more)" if len(self.alerts) > 1 else ""
        return f"[{self.status.upper()}] {text}{more}"


def render(target: WebhookTarget, note: AmNotification, raw: dict[str, Any], key: str) -> tuple[bytes, dict[str, str]]:
    """Body and headers for one webhook: Alertmanager's own payload (+ gateledger fields), or Slack."""
    if target.format == "slack":
        lines = [f"*{a.labels.get('alertname', '?')}* {a.status}: "
                 f"{a.annotations.get('summary') or a.annotations.get('description') or ''}".rstrip()
                 for a in note.alerts]
        payload: dict[str, Any] = {
            "text": note.summary(),
            "blocks": [
                {"type": "section", "text": {"type": "mrkdwn", "text": note.summary()}},
                {"type": "section", "text": {"type": "mrkdwn", "text": "\n".join(lines)[:2900]}},
                {"type": "context", "elements": [{"type": "mrkdwn", "text": f"`{key}` · {note.receiver} · gateledger"}]},
            ],
        }
    else:
        # Receivers that understand Alertmanager's webhook read it unchanged; the extra fields are ours.
        payload = {**raw, "type": "gateledger.alertmanager", "dedup_key": key, "summary": note.summary()}
    body = jsonutil.dumps(payload)
    headers = {"Content-Type": "application/json", "Idempotency-Key": key, "X-Gateledger-Alert-Id": key,
               **target.headers}
    if target.secret is not None:
        digest = hmac.new(target.secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        headers["X-Gateledger-Signature-256"] = f"sha256={digest}"
    return body, headers


def wanted(target: WebhookTarget, note: AmNotification) -> bool:
    """Whether a webhook takes this notification (``sources``; ``budgets`` matches budget labels)."""
    if target.sources and SOURCE not in target.sources:
        return False
    if target.budgets:
        names = {a.labels.get(k) for a in note.alerts for k in ("budget_id", "budget_name")}
        return bool(names & set(target.budgets))
    return True


class AlertmanagerRelay:
    """The ``/alertmanager`` handler's state: webhooks, sent store, HTTP session, dead letters."""

    def __init__(self, settings: NotifierSettings, targets: list[WebhookTarget], store: KafkaSentStore,
                 session: aiohttp.ClientSession, dead_letter: Callable[..., Any], masker: Masker,
                 monotonic: Callable[[], float] = time.monotonic) -> None:
        self.settings = settings
        self.targets = targets
        self.store = store
        self.session = session
        self.dead_letter = dead_letter  # async (letter) -> None
        self.masker = masker
        self._monotonic = monotonic
        self._locks: dict[str, asyncio.Lock] = {}
        self._limiter = Limiter(settings.alertmanager_rate_limit_per_s, settings.alertmanager_rate_limit_burst,
                                settings.alertmanager_max_concurrent)
        # 401, 408 and 429 keep no body: one dead letter per caller, reason and window, with a count.
        self.refusals = RefusalRecorder(stage="notify", masker=masker, send=self._send_letters,
                                        window_s=settings.alertmanager_refusal_window_s)

    async def _send_letters(self, letters: Any) -> None:
        for letter in letters:
            await self.dead_letter(letter)

    async def close(self) -> None:
        """Write the refusals still being counted (the server has stopped taking requests)."""
        await self.refusals.close()

    def refused(self, request: web.Request, status: int, reason: str, message: str,
                headers: dict[str, str] | None = None, origin: str = "http:/alertmanager") -> web.Response:
        """A refusal that keeps no body, counted into the coalesced dead letters."""
        telemetry.ALERTMANAGER.labels(reason).inc()
        self.refusals.record(origin=origin, reason=reason, status=status, message=message,
                             caller=request.remote, names=request.headers.keys())
        return web.json_response({"error": message, "reason": reason}, status=status, headers=headers)

    async def handle(self, request: web.Request) -> web.Response:
        """One notification from Alertmanager."""
        token = self.settings.alertmanager_token
        authenticated = token is None
        if token is not None:
            sent = request.headers.get("Authorization", "")
            # Any header text, non-ASCII or not UTF-8 at all, is a wrong token: 401, never 500.
            authenticated = same_secret(sent, f"Bearer {token.get_secret_value()}")
        # Counted before anything else is done for it: a flood costs a bucket look-up, never a body read.
        caller = ("token",) if authenticated and token is not None else ("peer", request.remote)
        refused = self._limiter.acquire(caller)
        if refused is not None:
            reason, wait_s = refused
            return self.refused(request, 429, reason, f"too many requests from this caller ({reason.replace('_', ' ')})",
                                 headers={"Retry-After": str(max(1, math.ceil(wait_s)))})
        try:
            if not authenticated:
                return self.refused(request, 401, "unauthenticated", "missing or wrong bearer token",
                                     headers={"WWW-Authenticate": "Bearer"})
            return await self._handle(request)
        finally:
            self._limiter.release(caller)

    async def _handle(self, request: web.Request) -> web.Response:
        timeout_s = self.settings.alertmanager_body_read_timeout_s
        try:
            async with asyncio.timeout(timeout_s):
                raw_body, complete = await self._read(request)
        except TimeoutError:
            # No complete request to keep (as the ingest routes, docs/ingest.md body_timeout).
            return self.refused(request, 408, "body_timeout", f"request body not received within {timeout_s:g} s",
                                 headers={"Connection": "close"})
        if not complete:
            limit = self.settings.alertmanager_max_body_bytes
            return await self._refuse(request, 413, "too_large", f"request body exceeds {limit} bytes", raw_body)
        try:
            raw = jsonutil.loads(raw_body)
            note = AmNotification.model_validate(raw)
        except (jsonutil.JSONDecodeError, ValidationError) as exc:
            return await self._refuse(request, 400, "invalid_alertmanager_payload",
                                      f"not an Alertmanager v4 webhook payload: {exc}", raw_body)
        key = note.dedup_key()
        lock = self._locks.setdefault(key, asyncio.Lock())
        async with lock:
            result = await self._relay(note, raw, key)
        if len(self._locks) > 10_000:  # forget idle locks; the sent store is the memory that matters
            self._locks = {k: v for k, v in self._locks.items() if v.locked()}
        pending = result["pending"]
        telemetry.ALERTMANAGER.labels("retry_later" if pending else "done").inc()
        if pending:
            return web.json_response({"dedup_key": key, **result}, status=503,
                                     headers={"Retry-After": str(int(self.settings.retry_initial_s) or 1)})
        return web.json_response({"dedup_key": key, **result})

    async def _read(self, request: web.Request) -> tuple[bytes, bool]:
        """The body and True, or its first bytes and False when it is over the limit (read no further)."""
        limit = self.settings.alertmanager_max_body_bytes
        if request.content_length is not None and request.content_length > limit:
            return await request.content.read(64 * 1024), False
        chunks, size = [], 0
        while chunk := await request.content.read(64 * 1024):
            chunks.append(chunk)
            size += len(chunk)
            if size > limit:
                return b"".join(chunks)[: 64 * 1024], False
        return b"".join(chunks), True

    async def _refuse(self, request: web.Request, status: int, reason: str, message: str,
                      raw_body: bytes) -> web.Response:
        """A clear refusal of an authenticated request, and its dead letter (docs/money.md, Alertmanager)."""
        telemetry.ALERTMANAGER.labels("invalid").inc()
        letter = make_dead_letter(stage="notify", origin="http:/alertmanager", reason=reason, error=message[:2000],
                                  original=raw_body, masker=self.masker, http_status=status, caller=request.remote)
        await self.dead_letter(letter)
        return web.json_response({"error": message[:500], "reason": reason}, status=status)

    async def _relay(self, note: AmNotification, raw: dict[str, Any], key: str) -> dict[str, list[str]]:
        out: dict[str, list[str]] = {"delivered": [], "duplicates": [], "dead_lettered": [], "pending": []}
        for target in self.targets:
            if not wanted(target, note):
                continue
            if self.store.status(key, target.name) is not None:
                telemetry.DUPLICATES.labels(target.name).inc()
                out["duplicates"].append(target.name)
                continue
            outcome = await self._deliver(target, note, raw, key)
            out[outcome].append(target.name)
        return out

    async def _deliver(self, target: WebhookTarget, note: AmNotification, raw: dict[str, Any], key: str) -> str:
        body, headers = render(target, note, raw, key)
        # Beyond alertmanager_deliver_within_s Alertmanager posts it again (answered 503); the webhooks
        # already served are not sent it twice.
        within = self.settings.alertmanager_deliver_within_s
        outcome = await post_with_backoff(self.session, target.name, target.url, body, headers, self.settings,
                                          pause=asyncio.sleep, clock=self._monotonic,
                                          give_up=lambda elapsed, wait: elapsed + wait > within)
        if outcome.kind == "delivered":
            telemetry.RETRYING.labels(target.name).set(0)
            await self.store.mark(key, target.name, "sent", outcome.detail)
            telemetry.DELIVERED.labels(target.name).inc()
            return "delivered"
        if outcome.kind == "permanent":
            telemetry.RETRYING.labels(target.name).set(0)
            letter = make_dead_letter(stage="notify", origin="http:/alertmanager", reason="webhook_rejected",
                                      error=f"{target.name}: {outcome.detail}", original=body, masker=self.masker,
                                      details={"webhook": target.name, "alert_id": key})
            await self.dead_letter(letter)
            await self.store.mark(key, target.name, "dead_lettered", outcome.detail)
            return "dead_lettered"
        telemetry.RETRYING.labels(target.name).set(1)
        log.warning("webhook %s: %s; Alertmanager notification %s left for Alertmanager's retry",
                    target.name, outcome.detail, key)
        return "pending"
