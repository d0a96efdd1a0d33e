"""Sending simulated deliveries to a running ingest service through its upstream-compatible endpoints
(the paths from ``producers/ingest/server.py`` ``ingest_path``, where the routes are registered).

- Obot shim records: ``POST /api/mcp-audit-logs`` (a JSON array per batch, as the shim sends them)
- webhook-filter deliveries: ``POST /v1/obot/webhook``, one message per request, signed with
  ``X-Obot-Signature-256`` when a secret is given, with Obot's user / MCP server headers
- AxonFlow exchanges and Obot LLM gateway records: ``POST /v1/ingest/<format>``
- custom-gateway events: ``POST /v1/cloudevents`` (batch mode)

Malformed records go one per request (so a broken body never takes good records down with it).
503 and network errors are retried with backoff (nothing is lost while Kafka is down); other
answers are final and counted.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
import random
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

import aiohttp

from gateledger import jsonutil
from gateledger.retry import Backoff
from producers.ingest.server import ingest_path
from producers.simulator.traffic import Delivery

log = logging.getLogger(__name__)

TENANT_HINT = "X-Gateledger-Tenant"
# gateledger's backoff (jittered, Retry-After wins), capped at 5 s, never giving up: nothing is lost while
# Kafka is down.
RETRY = Backoff(initial_s=0.2, max_s=5.0, jitter=True)


@dataclass
class DeliveryStats:
    """What the ingest service answered."""

    requests: int = 0
    statuses: Counter[int] = field(default_factory=Counter)
    records: int = 0
    retries: int = 0


class Deliverer:
    """Posts deliveries; one instance per target."""

    def __init__(self, session: aiohttp.ClientSession, target: str, *, tokens: dict[str, str] | None = None,
                 token: str | None = None, webhook_secret: str | None = None, batch_size: int = 500,
                 concurrency: int = 16) -> None:
        self.session = session
        self.base = target.rstrip("/")
        self.tokens = tokens or {}
        self.token = token
        self.secret = webhook_secret.encode() if webhook_secret else None
        self.batch_size = batch_size
        self.concurrency = concurrency
        self.stats = DeliveryStats()
        self._rng = random.Random(0)  # the backoff's jitter; the records themselves are the simulation's

    def _headers(self, tenant: str, extra: dict[str, str] | None = None) -> dict[str, str]:
        headers = {"Content-Type": "application/json", TENANT_HINT: tenant}
        token = self.tokens.get(tenant, self.token)
        if token:
            headers["Authorization"] = f"Bearer {token}"
        if extra:
            headers.update(extra)
        return headers

    async def _post(self, path: str, body: bytes, headers: dict[str, str], records: int) -> int:
        failures = 0
        while True:
            try:
                async with self.session.post(self.base + path, data=body, headers=headers) as resp:
                    await resp.read()
                    if resp.status not in (429, 502, 503, 504):
                        self.stats.requests += 1
                        self.stats.statuses[resp.status] += 1
                        self.stats.records += records
                        return resp.status
                    retry_after = resp.headers.get("Retry-After")
            except (aiohttp.ClientError, OSError, TimeoutError):
                retry_after = None
            self.stats.retries += 1
            failures += 1
            await asyncio.sleep(RETRY.delay(failures, retry_after, self._rng))

    async def send(self, deliveries: Iterable[Delivery]) -> None:
        """Send in delivery order: consecutive records of one format and tenant share a request."""
        batch: list[Delivery] = []

        async def flush() -> None:
            if batch:
                d0 = batch[0]
                if d0.fmt == "cloudevents":
                    headers = self._headers(d0.tenant, {"Content-Type": "application/cloudevents-batch+json"})
                else:
                    headers = self._headers(d0.tenant)
                await self._post(ingest_path(d0.fmt), jsonutil.dumps([d.value for d in batch]), headers, len(batch))
                batch.clear()

        # Webhook deliveries are one request each, as Obot makes them: several in flight at once.
        slots = asyncio.Semaphore(self.concurrency)
        pending: list[asyncio.Task[None]] = []

        async def single(d: Delivery) -> None:
            async with slots:
                await self._single(d)

        for d in deliveries:
            if d.fmt == "obot-webhook" and d.kind != "malformed":
                pending.append(asyncio.create_task(single(d)))
                continue
            if d.kind == "malformed":
                await flush()
                await self._single(d)
                continue
            if batch and (batch[0].fmt != d.fmt or batch[0].tenant != d.tenant or len(batch) >= self.batch_size):
                await flush()
            batch.append(d)
        await flush()
        await asyncio.gather(*pending)

    async def _single(self, d: Delivery) -> None:
        body = d.body()
        if d.fmt == "obot-webhook":
            extra = dict(d.headers)
            if self.secret is not None:
                extra["X-Obot-Signature-256"] = "sha256=" + hmac.new(self.secret, body, hashlib.sha256).hexdigest()
            await self._post(ingest_path(d.fmt), body, self._headers(d.tenant, extra), 1)
            return
        if d.fmt == "cloudevents":
            headers = self._headers(d.tenant, {"Content-Type": "application/cloudevents+json"})
        else:
            headers = self._headers(d.tenant)
        if d.fmt == "obot-audit" and d.raw is None:
            body = jsonutil.dumps([d.value])  # the shim endpoint takes arrays only
        await self._post(ingest_path(d.fmt), body, headers, 1)
