"""The AxonFlow tap: a transparent reverse proxy in front of AxonFlow.

Clients change only their AxonFlow URL (to ``http://<ingest>/axonflow``, or the root of the tap's
own port; ``.../t/<token>`` in front names the caller's gateledger token for clients that cannot
send a header). Every request goes to the configured upstream unchanged: method, path, query,
body and headers, AxonFlow's ``Authorization`` included (only hop-by-hop headers and the
gateledger token are dropped).

Callers authenticate to gateledger first (``producers.axonflow.auth``): with tokens configured, a
request without a known token, or naming a tenant its token does not allow, is answered 401/403
by the tap and never forwarded. The tenant decided there is the exchange's only tenant. A refusal of
a caller with a known token is dead-lettered with its body; one that keeps no trusted body (a
stranger's, a body not received in time or over the limit) is counted into one coalesced dead letter
per caller, path, reason and window (gateledger/refusals.py).

Recorded calls, each as one ``AxonFlowExchange`` (request, response, HTTP status, times, the
upstream's latency, the caller's W3C ``traceparent`` and AxonFlow's ``X-Budget-Warning``),
published before the client gets its answer: ``POST /api/policy/pre-check``,
``POST /api/audit/llm-call``, ``POST /api/v1/decide``, ``POST /api/v1/mcp/check-input`` and
``POST /api/v1/mcp/check-output``. Everything else is streamed through both ways, unrecorded.

Kafka down: the upstream has answered, but the exchange cannot be recorded; the client gets 503
with ``Retry-After`` instead of the upstream's answer. Governance fails closed: an approved
pre-check gateledger never saw would later look like an LLM call nobody approved. An exchange that
is not valid AxonFlow is dead-lettered and the upstream's answer is passed on. Upstream
unreachable: 502, nothing recorded.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
import zlib
from typing import Any

import aiohttp
from aiohttp import web
from multidict import CIMultiDict, CIMultiDictProxy

from gateledger import jsonutil
from gateledger.clock import utcnow
from gateledger.contracts.envelope import utc_iso
from gateledger.contracts.wire.axonflow import BUDGET_BLOCK_STATUS, budget_block_body, go_json
from gateledger.deadletter import make_dead_letter
from gateledger.masking import Masker
from gateledger.refusals import RefusalRecorder, unrouted_refusals
from gateledger.topics import Format
from producers import telemetry
from producers.accept import RawRecord, accept
from producers.axonflow.auth import TOKEN_HEADER, TapAuth, TapRefusal, header_value
from producers.accept import IngestContext
from producers.ingest.enforcement import decide_precheck
from producers.publisher import Publisher, PublishError

log = logging.getLogger(__name__)

SOURCE = "axonflow-tap"
RECORDED: dict[str, tuple[Format, str]] = {
    "/api/policy/pre-check": (Format.AXONFLOW_PRECHECK, "precheck"),
    "/api/audit/llm-call": (Format.AXONFLOW_LLM_CALL, "llm_audit"),
    # AxonFlow's newer governance planes (getaxonflow/axonflow platform/agent/mcp_handler.go,
    # mcpCheckInputHandler / mcpCheckOutputHandler; /decide: the SDK's axonflow/pep.py DECIDE_PATH).
    "/api/v1/decide": (Format.AXONFLOW_GOVERNANCE, "decide"),
    "/api/v1/mcp/check-input": (Format.AXONFLOW_GOVERNANCE, "mcp_check_input"),
    "/api/v1/mcp/check-output": (Format.AXONFLOW_GOVERNANCE, "mcp_check_output"),
}
# ".../t/<token>/..." in front of the AxonFlow path: the gateledger token for clients (the official
# SDK) that cannot add a header; stripped before anything is forwarded or recorded.
_PATH_TOKEN = re.compile(r"^t/([^/]{1,512})(?:/|$)")
# RFC 9110 7.6.1 connection-specific headers, plus the ones the client library sets itself.
_HOP_BY_HOP = frozenset(
    h.lower()
    for h in (
        "Connection", "Keep-Alive", "Proxy-Authenticate", "Proxy-Authorization", "TE", "Trailer",
        "Transfer-Encoding", "Upgrade", "Host", "Content-Length",
    )
)


# Refusals that never keep a body: a stranger's (401), a body not received (408) or not read (413).
_BODILESS = frozenset({401, 408, 413})
_NOT_FORWARDED = _HOP_BY_HOP | {TOKEN_HEADER.lower()}
_CREDENTIALS = frozenset({TOKEN_HEADER.lower(), "proxy-authorization"})


def forward_headers(headers: CIMultiDictProxy[str] | CIMultiDict[str]) -> CIMultiDict[str]:
    """The end-to-end headers of a message (all but hop-by-hop ones and gateledger's token), in order."""
    return CIMultiDict((k, v) for k, v in headers.items() if k.lower() not in _NOT_FORWARDED)


def _ascii_headers(headers: CIMultiDictProxy[str]) -> None:
    """400 for a header value that is not printable ASCII: the tap cannot forward it faithfully."""
    for name, value in headers.items():
        if not value.isascii() or any(not c.isprintable() and c != "\t" for c in value):
            # gateledger's own credentials: a 401, as for any credential it cannot read.
            status = 401 if name.lower() in _CREDENTIALS else 400
            raise TapRefusal(status, "bad_header", f"header {name} is not printable ASCII")


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
    """Proxies to one AxonFlow upstream and records its governance calls."""

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
        auth: TapAuth | None = None,
        body_read_timeout_s: float = 30.0,
        refusals: RefusalRecorder | None = None,
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
        self.auth = auth or TapAuth({}, tenant)
        self.body_read_timeout_s = body_read_timeout_s
        # Refusals that keep no body (gateledger/refusals.py); the ingest passes its own, shared by all routes.
        self.refusals = refusals or RefusalRecorder(
            stage="ingest", masker=masker, send=lambda letters: self.publisher.dead_letter(letters, source=SOURCE))

    def _tail(self, request: web.Request) -> tuple[str, str | None]:
        """The AxonFlow path (without a leading slash) and the token named in the URL, if any."""
        tail = request.match_info.get("tail", "")
        m = _PATH_TOKEN.match(tail)
        return (tail[m.end():], m.group(1)) if m else (tail, None)

    def _url(self, request: web.Request, tail: str) -> str:
        url = f"{self.upstream}/{tail}"
        return f"{url}?{request.query_string}" if request.query_string else url

    async def handle(self, request: web.Request) -> web.StreamResponse:
        """Route: authenticate, then record the governance calls and stream everything else."""
        tail, url_token = self._tail(request)
        path = "/" + tail
        recorded = RECORDED.get(path) if request.method == "POST" else None
        kind = recorded[1] if recorded else "passthrough"
        headers = request.headers
        if url_token is not None:
            headers = CIMultiDictProxy(CIMultiDict([*request.headers.items(), (TOKEN_HEADER, url_token)]))
        try:
            _ascii_headers(request.headers)
            if recorded is not None:
                return await self._recorded(request, headers, tail, path, *recorded)
            self.auth.tenant_for(headers, None)
            return await self._passthrough(request, tail)
        except TapRefusal as refusal:
            telemetry.TAP_REQUESTS.labels(kind=kind, status=str(refusal.status)).inc()
            extra = {"WWW-Authenticate": "Bearer"} if refusal.status == 401 else None
            if refusal.status == 408:
                # The connection is left in the middle of a body: closed.
                extra = {"Connection": "close"}
            origin = f"tap:{path}" if recorded is not None else "tap:passthrough"
            known = self.auth.knows(headers)
            if refusal.status in _BODILESS or not known:
                # No trusted body to keep (a stranger, a body not received or not read): counted and
                # coalesced per caller, never written per request (docs/ingest.md "Refusals").
                self.refusals.record(origin=origin, reason=refusal.reason, status=refusal.status,
                                     message=refusal.message, caller=request.remote,
                                     tenant=self._tenant(headers) if known else None, names=request.headers.keys())
            elif not await self._dead_letter(request, origin, refusal, recorded is not None):
                return web.json_response({"error": "audit store unavailable, retry later"}, status=503,
                                         headers={"Retry-After": str(self.retry_after_s)})
            return web.json_response(refusal.body(), status=refusal.status, headers=extra)
        except TimeoutError:
            telemetry.TAP_REQUESTS.labels(kind=kind, status="timeout").inc()
            return web.json_response({"error": "AxonFlow did not answer in time"}, status=504)
        except (aiohttp.ClientConnectionError, OSError) as exc:
            telemetry.TAP_REQUESTS.labels(kind=kind, status="unreachable").inc()
            return web.json_response({"error": f"AxonFlow unreachable: {exc.__class__.__name__}"}, status=502)

    def _tenant(self, headers: CIMultiDictProxy[str]) -> str | None:
        try:
            return self.auth.tenant_for(headers, None)
        except TapRefusal:
            return None

    async def _dead_letter(self, request: web.Request, origin: str, refusal: TapRefusal, with_body: bool) -> bool:
        """Dead-letter a refusal of a caller gateledger could identify, with its body (read under the
        usual limits); False when Kafka did not take it."""
        try:
            body = await self._read_body(request) if with_body and request.body_exists else b""
        except TapRefusal:  # the body did not arrive in time or is over the limit: the refusal stands, bodiless
            body = b""
        letter = make_dead_letter(stage="ingest", origin=origin, reason=refusal.reason, error=refusal.message,
                                  original=body, masker=self.masker, tenant=None,
                                  details={"method": request.method, "status": refusal.status},
                                  http_status=refusal.status, caller=request.remote)
        try:
            await self.publisher.dead_letter([letter], source=SOURCE)
        except PublishError as exc:
            log.warning("AxonFlow tap refusal not dead-lettered, answering 503: %s", exc)
            return False
        return True

    async def _read_body(self, request: web.Request) -> bytes:
        """The whole body, or a 408 ``body_timeout`` refusal when it does not arrive within the
        ingest's body-read timeout (a slow-loris sender holds no slot and no upstream call for longer)."""
        try:
            async with asyncio.timeout(self.body_read_timeout_s):
                return await request.read()
        except TimeoutError:
            telemetry.REJECTED.labels(source=SOURCE, reason="body_timeout").inc()
            raise TapRefusal(408, "body_timeout",
                             f"request body not received within {self.body_read_timeout_s:g} s") from None
        except web.HTTPRequestEntityTooLarge:
            telemetry.REJECTED.labels(source=SOURCE, reason="too_large").inc()
            raise TapRefusal(413, "too_large", f"request body exceeds {request.client_max_size} bytes") from None

    def _budget_block(self, tenant: str, req_obj: dict[str, Any] | None) -> dict[str, Any] | None:
        """AxonFlow's 402 body when a block budget refuses this pre-check (None: forward it).

        ``tenant`` is the authenticated one: nothing the client writes (X-Tenant-ID outside its
        token, ``context.tenant_id``) can move the check to another tenant's budgets.
        """
        if self.enforcer is None or req_obj is None:
            return None
        verdict = decide_precheck(self.enforcer, req_obj, tenant)
        if not verdict.blocked:
            return None
        if verdict.decision is not None and verdict.decision.blocked:
            return verdict.decision.axonflow_precheck()
        # Fail-closed on a stale view: no budget to name, so AxonFlow's shape without budget_info.
        return budget_block_body(verdict.reason, None)

    async def _recorded(self, request: web.Request, headers: CIMultiDictProxy[str], tail: str, path: str,
                        fmt: str, kind: str) -> web.Response:
        body = await self._read_body(request)
        started = utcnow()
        req_obj = _json_object(decoded(body, request.headers.get("Content-Encoding")))
        tenant = self.auth.tenant_for(headers, req_obj)
        # Read (and refused when unreadable) before anything is forwarded: AxonFlow correlates on it
        # (gateway_handlers.go, mcp_handler.go: traceIDFromHeader(r.Header.Get("traceparent"))).
        traceparent = header_value(request.headers, "traceparent")
        blocked = self._budget_block(tenant, req_obj) if kind == "precheck" else None
        if blocked is not None:
            # Answered here, as AxonFlow answers a budget block (HTTP 402): AxonFlow never sees it.
            status, upstream_s = BUDGET_BLOCK_STATUS, 0.0
            resp_body = go_json(blocked)
            resp_headers: CIMultiDict[str] = CIMultiDict({"Content-Type": "application/json"})
            telemetry.TAP_REQUESTS.labels(kind=kind, status=str(status)).inc()
        else:
            t0 = time.perf_counter()
            async with self.session.request(
                request.method, self._url(request, tail), data=body, headers=forward_headers(request.headers),
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
            "tenant_header": tenant,
            "traceparent": traceparent,
            # A warn-action budget over its limit (gateway_handlers.go, issue #1082).
            "budget_warning": resp_headers.get("X-Budget-Warning"),
        }
        if blocked is not None:
            exchange["answered_by"] = "gateledger"  # a budget block: not forwarded to AxonFlow
        ctx = IngestContext(masker=self.masker, tenant=tenant, install=self.install, received_at=finished,
                            tenant_locked=True)
        try:
            await accept(self.publisher, fmt, [RawRecord(0, value=exchange)], ctx, origin=f"tap:{path}", source=SOURCE)
        except PublishError as exc:
            log.warning("AxonFlow exchange not recorded, answering 503: %s", exc)
            return web.json_response(
                {"error": "audit store unavailable, retry later"}, status=503,
                headers={"Retry-After": str(self.retry_after_s)},
            )
        return web.Response(body=resp_body, status=status, headers=resp_headers)

    async def _passthrough(self, request: web.Request, tail: str) -> web.StreamResponse:
        headers = forward_headers(request.headers)
        data: Any = None
        if request.body_exists:
            data = request.content.iter_any()
            if request.content_length is not None:
                headers["Content-Length"] = str(request.content_length)
        async with self.session.request(
            request.method, self._url(request, tail), data=data, headers=headers,
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


def build_tap_app(tap: AxonFlowTap, max_body_bytes: int, middlewares: Any = ()) -> web.Application:
    """An application serving the tap at its root (mount it under a prefix, or serve it alone: then
    with the ingest's own middlewares, so its port drains, limits and checks headers as the rest)."""
    # Served alone, what aiohttp refuses before the middlewares is the tap's to count (mounted under the
    # ingest, the ingest application's handler_args apply instead).
    app = web.Application(client_max_size=max_body_bytes, middlewares=list(middlewares),
                          handler_args=unrouted_refusals(lambda: tap.refusals, "tap"))
    app.router.add_route("*", "/{tail:.*}", tap.handle)
    return app
