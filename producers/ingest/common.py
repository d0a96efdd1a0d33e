"""What every ingest route shares: the app's state, caller authentication, bounded body reading,
error answers, and dead letters for bodies rejected as a whole.

Error answers are JSON ``{"error": "..."}`` (plus details) with a 4xx status for bad input, 401 for
unknown callers and 503 + ``Retry-After`` when Kafka did not acknowledge: the caller retries, and
nothing was reported accepted that Kafka did not hold.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import logging
from collections.abc import Awaitable
from dataclasses import dataclass, field
from typing import Any, TypeVar

import aiohttp
from aiohttp import web

from gateledger import jsonutil
from gateledger.deadletter import make_dead_letter
from gateledger.httpheaders import as_bytes, is_visible_ascii, same_secret
from gateledger.masking import Masker
from gateledger.refusals import AIOHTTP_REASONS, RefusalRecorder, mark_reached
from producers import telemetry
from producers.accept import AcceptResult
from producers.ingest.settings import IngestSettings, TokenGrant
from producers.publisher import Publisher, PublishError, RecordsTooLarge

log = logging.getLogger(__name__)

T = TypeVar("T")


@dataclass
class IngestState:
    """Everything a route handler needs, built once per application."""

    publisher: Publisher
    settings: IngestSettings
    masker: Masker
    # One client session for outbound calls (tee forwarding, the AxonFlow tap), made at start-up.
    http: aiohttp.ClientSession | None = None
    # sha256(token) -> grant; hashing keeps lookups independent of how much of a token matches.
    token_index: dict[bytes, TokenGrant] = field(default_factory=dict)
    # Refusals with no trusted body, coalesced into bounded dead letters (gateledger/refusals.py).
    refusals: RefusalRecorder = field(init=False)

    def __post_init__(self) -> None:
        self.token_index = {token_digest(t): g for t, g in self.settings.tokens.items()}
        self.refusals = RefusalRecorder(stage="ingest", masker=self.masker,
                                        send=lambda letters: self.publisher.dead_letter(letters, source="http"),
                                        window_s=self.settings.refusal_window_s,
                                        max_keys=self.settings.refusal_max_keys)


STATE = web.AppKey("ingest_state", IngestState)


def token_digest(token: str) -> bytes:
    """sha256 of a token as received (the key of the token index)."""
    return hashlib.sha256(as_bytes(token)).digest()


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tenant and upstream install their token speaks for."""

    tenant: str
    install: str
    token: str | None = None
    # True when the token speaks for exactly this tenant: records may not claim another one.
    locked: bool = False


class HttpError(Exception):
    """An error answer: raised anywhere in a handler, turned into a JSON response by the middleware."""

    def __init__(self, status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> None:
        super().__init__(message)
        self.status = status
        self.headers = headers
        self.payload = {"error": message, **extra}
        # True once the refusal is a dead letter with its body; else the middleware records it coalesced.
        self.lettered = False

    @property
    def reason(self) -> str:
        """The refusal's reason code."""
        return str(self.payload.get("reason") or "unknown")

    def response(self) -> web.Response:
        """The JSON response ``{"error": message, ...}``."""
        return web.Response(
            body=jsonutil.dumps(self.payload), status=self.status, content_type="application/json", headers=self.headers
        )


def json_error(status: int, message: str, headers: dict[str, str] | None = None, **extra: Any) -> HttpError:
    """An HTTP error with a JSON body ``{"error": message, ...}`` (raise it)."""
    return HttpError(status, message, headers, **extra)


# Headers that carry credentials, signatures or identities: visible ASCII or the request is refused
# before any handler reads them (docs/ingest.md "Refusals").
CREDENTIAL_HEADERS = ("Authorization", "X-Obot-Signature-256")
IDENTITY_HEADERS = ("X-Gateledger-Tenant", "X-Tenant-ID", "X-Client-ID", "X-User-ID", "Idempotency-Key")


def check_headers(request: web.Request) -> None:
    """401 (credentials) or 400 (identities) for a header that is not visible ASCII."""
    for name in CREDENTIAL_HEADERS:
        value = request.headers.get(name)
        if value is not None and not is_visible_ascii(value):
            telemetry.REJECTED.labels(source="http", reason="bad_header").inc()
            raise json_error(401, f"{name} is not visible ASCII", headers={"WWW-Authenticate": "Bearer"},
                             reason="bad_header")
    for name in IDENTITY_HEADERS:
        value = request.headers.get(name)
        if value is not None and not is_visible_ascii(value):
            telemetry.REJECTED.labels(source="http", reason="bad_header").inc()
            raise json_error(400, f"{name} is not visible ASCII", reason="bad_header")


@web.middleware
async def error_middleware(request: web.Request, handler: Any) -> web.StreamResponse:
    """Turn HttpError into its response, account for every refusal (a dead letter with its body, or a
    coalesced one: gateledger/refusals.py) and count every answer per route and status."""
    mark_reached(request)  # the outermost refusing middleware: what it refuses it counts itself
    resource = request.match_info.route.resource
    route = resource.canonical if resource is not None else "unmatched"
    try:
        try:
            check_headers(request)
        except HttpError as exc:
            raise await letter_bad_header(request, exc) from None
        resp = await handler(request)
    except HttpError as exc:
        if 400 <= exc.status < 500 and not exc.lettered:
            record_refusal(request, route, exc.status, exc.reason, str(exc))
        resp = exc.response()
    except web.HTTPException as exc:
        if not 400 <= exc.status < 500:
            telemetry.HTTP_REQUESTS.labels(route=route, status=str(exc.status)).inc()
            raise
        reason = AIOHTTP_REASONS.get(exc.status, "bad_request")
        telemetry.REJECTED.labels(source="http", reason=reason).inc()
        record_refusal(request, route, exc.status, reason, exc.reason)
        allow = {"Allow": exc.headers["Allow"]} if "Allow" in exc.headers else None
        resp = json_error(exc.status, exc.reason, headers=allow, reason=reason).response()
    telemetry.HTTP_REQUESTS.labels(route=route, status=str(resp.status)).inc()
    return resp


def authenticated_tenant(request: web.Request) -> str | None:
    """The tenant of the request's bearer token when the service knows it (None: a stranger)."""
    state = request.config_dict[STATE]
    token = bearer_token(request)
    grant = lookup_token(state, token)
    if grant is None:
        return None
    tenant = caller_for(state, grant, token, request).tenant
    return tenant if is_visible_ascii(tenant) else "unknown"


def record_refusal(request: web.Request, route: str, status: int, reason: str, message: str) -> None:
    """Count a refusal that keeps no body: one coalesced dead letter per caller, route, reason and window."""
    request.config_dict[STATE].refusals.record(
        origin=f"http:{route}", reason=reason, status=status, message=message, caller=request.remote,
        tenant=authenticated_tenant(request), names=request.headers.keys())


async def letter_bad_header(request: web.Request, exc: HttpError) -> HttpError:
    """A bad identity header from a caller with a known token: dead-lettered with its body (read under
    the usual limits); anything else (credential headers, strangers) is left to the coalesced record."""
    tenant = authenticated_tenant(request) if exc.status == 400 else None
    if tenant is None:
        return exc
    try:
        body = await read_body(request)
    except BodyTooLarge as big:
        body = big.head
    except HttpError:  # the body did not arrive in time either: the header refusal stands, coalesced
        return exc
    return await reject_body(request, status=400, reason="bad_header", message=str(exc), raw=body, source="http",
                             tenant=tenant, details={"header_names": list(request.headers.keys())[:32]})


def bearer_token(request: web.Request) -> str | None:
    """The bearer token of the request, if any."""
    scheme, _, token = request.headers.get("Authorization", "").partition(" ")
    token = token.strip()
    return token if scheme.lower() == "bearer" and token else None


def lookup_token(state: IngestState, token: str | None) -> TokenGrant | None:
    """The grant of a configured token, or None."""
    if token is None:
        return None
    return state.token_index.get(token_digest(token))


TENANT_HINT = "X-Gateledger-Tenant"
RELAY = "*"  # a grant for any tenant: a trusted relay (an internal gateway, the simulator)


def _hint(request: web.Request | None) -> str:
    return request.headers.get(TENANT_HINT, "").strip() if request is not None else ""


def caller_for(state: IngestState, grant: TokenGrant | None, token: str | None = None,
               request: web.Request | None = None) -> Caller:
    """A caller from a grant (None: the defaults; tenant ``*``: a relay naming tenants itself)."""
    s = state.settings
    if grant is None:
        return Caller(s.default_tenant, s.install, token)
    install = grant.install or s.install
    if grant.tenant == RELAY:
        return Caller(_hint(request) or s.default_tenant, install, token)
    return Caller(grant.tenant, install, token, locked=True)


def open_caller(request: web.Request, state: IngestState, token: str | None = None) -> Caller:
    """The caller of an unauthenticated endpoint (no tokens configured: the loopback default).

    Here, and for relay tokens, a request may name its tenant itself (``X-Gateledger-Tenant``);
    with a tenant's own token, the token decides and the header is ignored.
    """
    caller = caller_for(state, None, token)
    hint = _hint(request)
    return Caller(hint, caller.install, token) if hint else caller


def authenticate(request: web.Request) -> Caller:
    """Resolve the bearer token to a tenant; 401 when tokens are configured and this one is not known."""
    state = request.config_dict[STATE]
    token = bearer_token(request)
    if not state.token_index:
        return open_caller(request, state, token)
    grant = lookup_token(state, token)
    if grant is None:
        raise unauthorized("missing or unknown bearer token")
    return caller_for(state, grant, token, request)


def unauthorized(message: str) -> HttpError:
    """401 with a Bearer challenge."""
    return json_error(401, message, headers={"WWW-Authenticate": "Bearer"}, reason="unauthenticated")


class BodyTooLarge(Exception):
    """The body exceeded the limit; ``head`` holds what was read (limit + 1 bytes at most)."""

    def __init__(self, head: bytes, declared: int | None) -> None:
        super().__init__(f"body larger than the limit ({declared or len(head)} bytes)")
        self.head = head
        self.declared = declared


async def read_body(request: web.Request) -> bytes:
    """The request body, or BodyTooLarge once more than the configured maximum arrived; 408
    ``body_timeout`` when it does not arrive within ``body_read_timeout_s`` (a slow-loris sender)."""
    settings = request.config_dict[STATE].settings
    limit = settings.max_body_bytes
    declared = request.content_length
    if declared is not None and declared > limit:
        # Read only a head for the dead letter; the rest is never buffered.
        raise BodyTooLarge(await _read_upto(request, 64 * 1024, settings.body_read_timeout_s), declared)
    body = await _read_upto(request, limit + 1, settings.body_read_timeout_s)
    if len(body) > limit:
        raise BodyTooLarge(body, declared)
    return body


async def _read_upto(request: web.Request, n: int, timeout_s: float) -> bytes:
    # StreamReader.read(n) returns what has arrived so far, not n bytes: read until n or the end.
    chunks: list[bytes] = []
    got = 0
    try:
        async with asyncio.timeout(timeout_s):
            while got < n:
                chunk = await request.content.read(n - got)
                if not chunk:
                    break
                chunks.append(chunk)
                got += len(chunk)
    except TimeoutError:
        telemetry.REJECTED.labels(source="http", reason="body_timeout").inc()
        raise json_error(408, f"request body not received within {timeout_s:g} s", reason="body_timeout",
                         headers={"Connection": "close"}) from None
    return b"".join(chunks)


async def reject_body(
    request: web.Request,
    *,
    status: int,
    reason: str,
    message: str,
    raw: bytes,
    source: str,
    tenant: str | None,
    details: dict[str, Any] | None = None,
) -> HttpError:
    """Dead-letter a body rejected as a whole and return the 4xx to raise (503 if Kafka is down)."""
    state = request.config_dict[STATE]
    telemetry.REJECTED.labels(source=source, reason=reason).inc()
    letter = make_dead_letter(
        stage="ingest",
        origin=f"http:{request.path}",
        reason=reason,
        error=message,
        original=raw,
        masker=state.masker,
        tenant=tenant,
        details={"content_type": request.content_type, **(details or {})},
        http_status=status,
        caller=request.remote,
    )
    await publish_or_503(request, state.publisher.dead_letter([letter], source=source))
    err = json_error(status, message, reason=reason)
    err.lettered = True
    return err


async def too_large(request: web.Request, exc: BodyTooLarge, source: str, tenant: str | None) -> HttpError:
    """413 for an oversized body, after dead-lettering its head."""
    limit = request.config_dict[STATE].settings.max_body_bytes
    return await reject_body(
        request,
        status=413,
        reason="too_large",
        message=f"request body exceeds {limit} bytes",
        raw=exc.head,
        source=source,
        tenant=tenant,
        details={"declared_length": exc.declared, "limit": limit, "truncated": True},
    )


async def publish_or_503(request: web.Request, coro: Awaitable[T]) -> T:
    """Await a publish; Kafka unavailability becomes 503 + Retry-After (nothing was accepted), an
    event over the record limit a 413 ``too_large`` and a dead letter (a retry could never succeed)."""
    try:
        return await coro
    except RecordsTooLarge as exc:
        state = request.config_dict[STATE]
        telemetry.REJECTED.labels(source="http", reason="too_large").inc()
        letters = [make_dead_letter(stage="ingest", origin=f"http:{request.path}", reason="too_large", error=str(exc),
                                    original=head, masker=state.masker,
                                    details={"event_bytes": size, "limit": exc.limit, "truncated": True},
                                    http_status=413, caller=request.remote)
                   for head, size in zip(exc.heads, exc.sizes, strict=True)]
        await publish_or_503(request, state.publisher.dead_letter(letters, source="http"))
        err = json_error(413, f"event over the {exc.limit}-byte record limit", reason="too_large")
        err.lettered = True
        raise err from None
    except PublishError as exc:
        log.warning("publish failed: %s", exc)
        retry = str(request.config_dict[STATE].settings.retry_after_s)
        raise json_error(503, "event store unavailable, retry later", headers={"Retry-After": retry}) from exc


def result_payload(result: AcceptResult, **extra: Any) -> dict[str, Any]:
    """The JSON answer describing an accept: counts, event ids and each rejection."""
    return {
        "accepted": result.accepted,
        "rejected": [{"index": r.index, "reason": r.reason, "error": r.message} for r in result.rejections],
        **extra,
    }


def result_response(result: AcceptResult, **extra: Any) -> web.Response:
    """200 when everything was accepted, 400 listing what was not (the rest was still accepted)."""
    return web.json_response(
        result_payload(result, **extra), status=400 if result.rejections else 200, dumps=jsonutil.dumps_str
    )


def verify_hmac_sha256(secret: bytes, body: bytes, header: str | None) -> bool:
    """True when ``header`` is the hex HMAC-SHA256 of ``body`` (``sha256=`` prefix optional)."""
    if not header:
        return False
    sig = header.strip()
    if sig.lower().startswith("sha256="):
        sig = sig[7:]
    expected = hmac.new(secret, body, hashlib.sha256).hexdigest()
    return same_secret(sig.lower(), expected)
