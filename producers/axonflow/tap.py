"""The AxonFlow tap: a transparent reverse proxy in front of AxonFlow Gateway Mode.

Clients change only their AxonFlow URL (to ``http://<ingest>/axonflow``, or the root of the tap's
own port). Every request goes to the configured upstream unchanged: method, path, query, body and
headers, authentication included (only hop-by-hop headers are dropped, as any proxy must).

Two calls are recorded, each as one ``AxonFlowExchange`` (request, response, HTTP status, start
and finish times, the upstream's latency) and published before the client gets its answer:
``POST /api/policy/pre-check`` and ``POST /api/audit/llm-call``. Everything else is streamed
through both ways without buffering and without recording.

Kafka down: the upstream has answered, but the exchange cannot be recorded; the client gets 503
with ``Retry-After`` instead of the upstream's answer. Governance fails closed: an approved
pre-check gateledger never saw would later look like an LLM call nobody approved. (A retried
pre-check gets a new context id from AxonFlow; a retried audit collapses onto the same event id.)
An exchange that is not valid AxonFlow (say, a malformed request the upstream refused) is
dead-lettered and the upstream's answer is passed on. Upstream unreachable: 502, nothing recorded.

Tenant of an exchange: ``X-Tenant-ID`` when the client sends it (older SDKs), else the client id
of the Basic credentials (AxonFlow derives the tenant from it), else ``context.tenant_id``.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
import zlib
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from gateledger import jsonutil
from gateledger.clock import utcnow
from gateledger.contracts.envelope import utc_iso
from gateledger.masking import Masker
from producers import telemetry
from producers.accept import RawRecord, accept
from producers.formats import IngestContext
from producers.ingest.enforcement import decide_precheck
from producers.publisher import Publisher, PublishError

log = logging.getLogger(__name__)

SOURCE = "axonflow-tap"
RECORDED: dict[str, tuple[str, str]] = {
    "/api/policy/pre-check": ("axonflow-precheck", "precheck"),
    "/api/audit/llm-call": ("axonflow-llm-call", "llm_audit"),
}
# RFC 9110 7.6.1 connection-specific headers, plus the ones the client library sets itself.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Host", "Content-Length",
    )
)


def forward_headers(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    """The end-to-end headers of a message (everything but hop-by-hop ones), in order, repeats kept."""
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _HOP_BY_HOP)


def basic_client_id(authorization: str | None) -> str | None:
    """The user part of ``Authorization: Basic`` credentials (AxonFlow's client id), never the secret."""
    if not authorization:
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8", "replace")
    except (binascii.Error, ValueError):
        return None
    user = decoded.partition(":")[0]
    return user or None


def decoded(raw: bytes, content_encoding: str | None) -> bytes | None:
    """The body without its content coding (gzip, deflate); None when the coding is unknown.

    The tap's client session does not decompress (the client must get the bytes the upstream
    sent), so the recorded copy is decoded here.
    """
    coding = (content_encoding or "identity").strip().lower()
    if coding in ("", "identity"):
        return raw
    try:
        if coding in ("gzip", "x-gzip"):
            return zlib.decompress(raw, 16 + zlib.MAX_WBITS)
        if coding == "deflate":
            try:
                return zlib.decompress(raw)
            except zlib.error:
                return zlib.decompress(raw, -zlib.MAX_WBITS)
    except zlib.error:
        return None
    return None


def _json_object(raw: bytes | None) -> dict[str, Any] | None:
    try:
        value = jsonutil.loads(raw) if raw else None
    except jsonutil.JSONDecodeError:
        return None
    return value if isinstance(value, dict) else None


class AxonFlowTap:
    """Proxies to one AxonFlow upstream and records the two Gateway Mode calls."""

    def __init__(
        self,
        upstream: str,
        session: aiohttp.ClientSession,
        publisher: Publisher,
        masker: Masker,
        *,
        tenant: str,
        install: str,
        timeout_s: float,
        retry_after_s: int,
        enforcer: Any = None,
    ) -> None:
        self.upstream = upstream.rstrip("/")
        self.session = session
        self.publisher = publisher
        self.masker = masker
        self.tenant = tenant
        self.install = install
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retry_after_s = retry_after_s
        # producers.ingest.enforcement.Enforcer: pre-checks a block budget refuses are answered here.
        self.enforcer = enforcer

    def _url(self, request: web.Request) -> str:
        tail = request.match_info.get("tail", "")
        url = f"{self.upstream}/{tail}"
        return f"{url}?{request.query_string}" if request.query_string else url

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Route: record the two Gateway Mode calls, stream everything else."""
        path = "/" + request.match_info.get("tail", "")
        recorded = RECORDED.get(path) if request.method == "POST" else None
        try:
            if recorded is not None:
                return await self._recorded(request, path, *recorded)
            return await self._passthrough(request)
        except TimeoutError:
            telemetry.TAP_REQUESTS.labels(kind=recorded[1] if recorded else "passthrough", status="timeout").inc()
            return web.json_response({"error": "AxonFlow did not answer in time"}, status=504)
        except (aiohttp.ClientConnectionError, OSError) as exc:
            telemetry.TAP_REQUESTS.labels(kind=recorded[1] if recorded else "passthrough", status="unreachable").inc()
            return web.json_response({"error": f"AxonFlow unreachable: {exc.__class__.__name__}"}, status=502)

    def _budget_block(self, request: web.Request, req_obj: dict[str, Any] | None) -> dict[str, Any] | None:
        """The 402 body when a block budget refuses this pre-check (None: forward it)."""
        if self.enforcer is None or req_obj is None:
            return None
        ctx = req_obj.get("context") if isinstance(req_obj.get("context"), dict) else {}
        tenant = (request.headers.get("X-Tenant-ID") or basic_client_id(request.headers.get("Authorization"))
                  or (str(ctx["tenant_id"]) if ctx.get("tenant_id") else None) or self.tenant)
        verdict = decide_precheck(self.enforcer, req_obj, tenant)
        if not verdict.blocked:
            return None
        if verdict.decision is not None and verdict.decision.blocked:
            return verdict.decision.axonflow_precheck()
        return {"approved": False, "block_reason": verdict.reason, "policies": ["budget_exceeded"],
                "error": "budget state unavailable", "message": verdict.reason}

    async def _recorded(self, request: web.Request, path: str, fmt: str, kind: str) -> web.Response:
        body = await request.read()
        started = utcnow()
        req_obj = _json_object(decoded(body, request.headers.get("Content-Encoding")))
        blocked = self._budget_block(request, req_obj) if kind == "precheck" else None
        if blocked is not None:
            # Answered here, as AxonFlow answers a budget block (HTTP 402): AxonFlow never sees it.
            status, upstream_s = 402, 0.0
            resp_body = jsonutil.dumps(blocked)
            resp_headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json"})
        else:
            t0 = time.perf_counter()
            async with self.session.request(
                request.method, self._url(request), data=body, headers=forward_headers(request.headers),
                allow_redirects=False, timeout=self.timeout,
            ) as up:
                resp_body = await up.read()
                status = up.status
                resp_headers = forward_headers(up.headers)
            upstream_s = time.perf_counter() - t0
            telemetry.TAP_UPSTREAM_LATENCY.labels(kind=kind).observe(upstream_s)
            telemetry.TAP_REQUESTS.labels(kind=kind, status=str(status)).inc()
        finished = utcnow()
        exchange: dict[str, Any] = {
            "path": path,
            "method": request.method,
            "status": status,
            # Not JSON at all: kept as text so the dead letter shows what was sent.
            "request": req_obj if req_obj is not None else {"_raw": body.decode("utf-8", "replace")},
            "response": _json_object(decoded(resp_body, resp_headers.get("Content-Encoding"))),
            "started_at": utc_iso(started),
            "finished_at": utc_iso(finished),
            "upstream_latency_ms": None if blocked is not None else round(upstream_s * 1000, 3),
            "tenant_header": request.headers.get("X-Tenant-ID") or basic_client_id(request.headers.get("Authorization")),
        }
        if blocked is not None:
            exchange["answered_by"] = "gateledger"  # a budget block: not forwarded to AxonFlow
        ctx = IngestContext(masker=self.masker, tenant=self.tenant, install=self.install, received_at=finished)
        try:
            await accept(self.publisher, fmt, [RawRecord(0, value=exchange)], ctx, origin=f"tap:{path}", source=SOURCE)
        except PublishError as exc:
            log.warning("AxonFlow exchange not recorded, answering 503: %s", exc)
            return web.json_response(
                {"error": "audit store unavailable, retry later"}, status=503,
                headers={"Retry-After": str(self.retry_after_s)},
            )
        return web.Response(body=resp_body, status=status, headers=resp_headers)

    async def _passthrough(self, request: web.Request) -> web.StreamResponse:
        headers = forward_headers(request.headers)
        data: Any = None
        if request.body_exists:
            data = request.content.iter_any()
            if request.content_length is not None:
                headers["Content-Length"] = str(request.content_length)
        async with self.session.request(
            request.method, self._url(request), data=data, headers=headers,
            allow_redirects=False, timeout=self.timeout,
        ) as up:
            telemetry.TAP_REQUESTS.labels(kind="passthrough", status=str(up.status)).inc()
            resp = web.StreamResponse(status=up.status, reason=up.reason, headers=forward_headers(up.headers))
            if up.content_length is not None:
                resp.content_length = up.content_length
            await resp.prepare(request)
            async for chunk in up.content.iter_any():
                await resp.write(chunk)
            await resp.write_eof()
            return resp


def build_tap_app(tap: AxonFlowTap, max_body_bytes: int) -> web.Application:
    """An application serving the tap at its root (mount it under a prefix, or serve it alone)."""
    app = web.Application(client_max_size=max_body_bytes)
    app.router.add_route("*", "/{tail:.*}", tap.handle)
    return app
