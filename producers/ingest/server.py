"""The ingest HTTP service: one aiohttp application, one route module per upstream system."""

from __future__ import annotations

import asyncio
import logging
import signal
from dataclasses import dataclass

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateledger.kafka import ensure_gateledger_topics, resolve
from gateledger.masking import Masker, masking_salt
from gateledger.settings import Settings
from producers.accept import AcceptResult, accept, parse_body
from producers.formats import FORMATS, IngestContext
from producers.ingest.settings import IngestSettings
from producers.publisher import PublishError, Publisher

log = logging.getLogger(__name__)

PUBLISHER = web.AppKey("publisher", Publisher)
SETTINGS = web.AppKey("ingest_settings", IngestSettings)
MASKER = web.AppKey("masker", Masker)


@dataclass(frozen=True)
class Caller:
    """Who is calling: the tenant their token speaks for."""

    tenant: str


def authenticate(request: web.Request) -> Caller:
    """Resolve the bearer token to a tenant; 401 when tokens are configured and this one is not known."""
    settings = request.app[SETTINGS]
    if not settings.tokens:
        return Caller(settings.default_tenant)
    header = request.headers.get("Authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or token.strip() not in settings.tokens:
        raise web.HTTPUnauthorized(
            text='{"error":"missing or unknown bearer token"}',
            content_type="application/json",
            headers={"WWW-Authenticate": "Bearer"},
        )
    return Caller(settings.tokens[token.strip()])


async def read_body(request: web.Request) -> bytes:
    """The request body, refusing more than the configured maximum with 413."""
    limit = request.app[SETTINGS].max_body_bytes
    if request.content_length is not None and request.content_length > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=request.content_length)
    body = await request.content.read(limit + 1)
    if len(body) > limit:
        raise web.HTTPRequestEntityTooLarge(max_size=limit, actual_size=len(body))
    return body


def result_response(result: AcceptResult) -> web.Response:
    """200 when everything was accepted, 400 listing what was not (the rest was still accepted)."""
    payload = {
        "accepted": result.accepted,
        "rejected": [{"index": r.index, "reason": r.reason, "error": r.message} for r in result.rejections],
    }
    return web.json_response(payload, status=400 if result.rejections else 200)


async def publish_or_503(coro: object) -> AcceptResult:
    """Await an accept; Kafka unavailability becomes 503 so the caller retries (nothing was lost)."""
    try:
        return await coro  # type: ignore[misc]
    except PublishError as exc:
        log.warning("publish failed: %s", exc)
        raise web.HTTPServiceUnavailable(
            text='{"error":"event store unavailable, retry later"}',
            content_type="application/json",
            headers={"Retry-After": "1"},
        ) from exc


async def ingest_generic(request: web.Request) -> web.Response:
    """``POST /v1/ingest/{format}``: a JSON array, object or JSON lines of records in that format."""
    fmt = request.match_info["format"]
    if fmt not in FORMATS:
        raise web.HTTPNotFound(text=f'{{"error":"unknown format {fmt!r}"}}', content_type="application/json")
    caller = authenticate(request)
    body = await read_body(request)
    settings = request.app[SETTINGS]
    ctx = IngestContext(
        masker=request.app[MASKER],
        tenant=caller.tenant,
        install=settings.install,
        tenant_header=request.headers.get("X-Tenant-ID"),
    )
    result = await publish_or_503(accept(request.app[PUBLISHER], fmt, parse_body(body), ctx, origin=f"http:{fmt}"))
    return result_response(result)


def build_app(publisher: Publisher, settings: IngestSettings, masker: Masker) -> web.Application:
    """The ingest application with every route registered."""
    app = web.Application(client_max_size=settings.max_body_bytes + 1024)
    app[PUBLISHER] = publisher
    app[SETTINGS] = settings
    app[MASKER] = masker

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_post("/v1/ingest/{format}", ingest_generic)
    return app


async def run_ingest(settings: Settings | None = None, stop: asyncio.Event | None = None) -> None:
    """Serve until ``stop`` is set."""
    settings = settings or Settings()
    ingest = IngestSettings()
    stop = stop or asyncio.Event()
    target = resolve(settings.kafka, settings.core)
    await ensure_gateledger_topics(settings.kafka, target)
    masker = Masker(salt=masking_salt(settings.core.data_dir))
    async with Publisher(settings.kafka, target) as publisher:
        runner = web.AppRunner(build_app(publisher, ingest, masker), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, ingest.host, ingest.port).start()
        log.info("ingest listening on http://%s:%d", ingest.host, ingest.port)
        try:
            await stop.wait()
        finally:
            await runner.cleanup()


def main() -> None:
    """Entry point: run until SIGTERM or SIGINT."""

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_ingest(stop=stop)

    asyncio.run(_main())
