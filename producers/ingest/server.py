"""The ingest HTTP service: one aiohttp application, one route module per upstream system.

Routes (docs/ingest.md has the full contract of each):
- ``POST /api/mcp-audit-logs``          Obot shim audit batches (``obot_shim``), optional tee to Obot
- ``POST /v1/obot/webhook[/{name}]``    Obot webhook filter (``webhook``)
- ``POST /v1/cloudevents``              CloudEvents structured / batch / binary (``cloudevents``)
- ``/axonflow/*``                       AxonFlow tap, when an upstream is configured (``producers.axonflow``)
- ``POST /v1/ingest/{format}``          any format by name (JSON array, object or JSON lines)
- ``GET /metrics``, ``GET /healthz``
"""

from __future__ import annotations

import asyncio
import logging
import os
import signal
from collections.abc import AsyncIterator

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest

from gateledger.clock import Clock, utcnow
from gateledger.kafka import ensure_gateledger_topics, resolve
from gateledger.masking import Masker, masking_salt
from gateledger.money.gauges import BudgetGaugeCollector
from gateledger.money.settings import MoneySettings
from gateledger.ratelimit import Limiter
from gateledger.refusals import unrouted_refusals
from gateledger.settings import Settings
from gateledger.signals import run_until_stopped
from producers.accept import accept, formats, parse_body
from producers.axonflow.auth import TapAuth
from producers.axonflow.tap import AxonFlowTap, build_tap_app
from producers.cloudevents import routes as cloudevents
from producers.accept import IngestContext
from producers.ingest.common import (
    STATE,
    BodyTooLarge,
    HttpError,
    IngestState,
    authenticate,
    error_middleware,
    publish_or_503,
    read_body,
    result_response,
    too_large,
)
from producers.ingest.drain import Drain, drain_middleware
from producers.ingest.enforcement import BudgetPolicy, Enforcer, build_enforcer
from producers.ingest.limits import LIMITER, limits_middleware
from producers.ingest.settings import IngestSettings
from producers.obot import shim as obot_shim
from producers.obot import webhook
from producers.obot.forward import ObotForwarder
from producers.obot.webhook import AcceptAll, DecisionPolicy
from producers.publisher import Publisher

log = logging.getLogger(__name__)

# Any format by name; formats with an upstream-compatible route of their own also have that one.
INGEST_ROUTE = "/v1/ingest/{format}"
_OWN_ROUTES: dict[str, str] = {m.FORMAT: m.ROUTE for m in (obot_shim, webhook, cloudevents)}


def ingest_path(fmt: str) -> str:
    """The path a client posts records of ``fmt`` to: the format's own route if it has one, else the generic one."""
    return _OWN_ROUTES.get(fmt, INGEST_ROUTE.format(format=fmt))


async def ingest_generic(request: web.Request) -> web.Response:
    """``POST /v1/ingest/{format}``: a JSON array, object or JSON lines of records in that format."""
    fmt = request.match_info["format"]
    if fmt not in formats():
        raise HttpError(404, f"unknown format {fmt!r}", reason="not_found", formats=sorted(formats()))
    state = request.app[STATE]
    caller = authenticate(request)
    try:
        body = await read_body(request)
    except BodyTooLarge as exc:
        raise await too_large(request, exc, fmt, caller.tenant) from None
    ctx = IngestContext(
        masker=state.masker,
        tenant=caller.tenant,
        install=caller.install,
        tenant_header=request.headers.get("X-Tenant-ID"),
        tenant_locked=caller.locked,
    )
    result = await publish_or_503(
        request, accept(state.publisher, fmt, parse_body(body), ctx, origin=f"http:{fmt}", source=fmt)
    )
    return result_response(result)


async def metrics(_: web.Request) -> web.Response:
    """Prometheus exposition."""
    return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})


ENFORCER = web.AppKey("enforcer", Enforcer)
TAP = web.AppKey("axonflow_tap", AxonFlowTap)


async def healthz(request: web.Request) -> web.Response:
    """Liveness (never waits for the budget view: enforcement reports its state here instead).

    ``pid`` says which worker answered when several share the port (GATELEDGER_INGEST_WORKERS).
    """
    enforcer = request.app.get(ENFORCER)
    return web.json_response({"ok": True, "pid": os.getpid(), "obot_shim": obot_shim.HEALTH,
                              **({"enforcement": enforcer.status()} if enforcer else {})})


def build_tap(state: IngestState, enforcer: Enforcer | None = None) -> AxonFlowTap | None:
    """The AxonFlow tap when an upstream is configured (its HTTP session is attached at start-up)."""
    s = state.settings
    if not s.axonflow_upstream_url:
        return None
    return AxonFlowTap(
        s.axonflow_upstream_url,
        None,  # type: ignore[arg-type]
        state.publisher,
        state.masker,
        tenant=s.default_tenant,
        install=s.install,
        timeout_s=s.axonflow_timeout_s,
        retry_after_s=s.retry_after_s,
        enforcer=enforcer,
        auth=TapAuth.build(s.axonflow_tokens, {t: g.tenant for t, g in s.tokens.items()}, s.default_tenant),
        body_read_timeout_s=s.body_read_timeout_s,
        refusals=state.refusals,
    )


def build_app(
    publisher: Publisher,
    settings: IngestSettings,
    masker: Masker,
    *,
    decision_policy: DecisionPolicy | None = None,
    tap: AxonFlowTap | None = None,
    enforcer: Enforcer | None = None,
) -> web.Application:
    """The ingest application with every route registered (``enforcer``: budget enforcement, started
    and stopped with the application)."""
    formats()  # a system mapping other formats than the registry lists: refused here, before serving
    state = IngestState(publisher=publisher, settings=settings, masker=masker)
    middlewares = [drain_middleware(settings.retry_after_s), error_middleware, limits_middleware]
    app = web.Application(client_max_size=settings.max_body_bytes + 1024, middlewares=middlewares,
                          handler_args=unrouted_refusals(lambda: state.refusals, "http"))
    app[STATE] = state
    app[LIMITER] = Limiter(settings.rate_limit_per_s, settings.rate_limit_burst, settings.max_concurrent_per_caller)
    tap = tap or build_tap(state, enforcer)
    if enforcer is not None:
        app[ENFORCER] = enforcer
        if tap is not None and tap.enforcer is None:
            tap.enforcer = enforcer
        decision_policy = BudgetPolicy(enforcer, decision_policy or AcceptAll())
    if tap is not None:
        app[TAP] = tap  # the one tap: run_ingest serves it on its own port too

    async def enforcement(app: web.Application) -> AsyncIterator[None]:
        gauges = None
        if enforcer is not None:
            enforcer.start()
            if settings.budget_gauges:
                gauges = BudgetGaugeCollector(enforcer.view, enforcer.clock, enforcer.refresh_budgets)
                REGISTRY.register(gauges)
        yield
        if gauges is not None:
            REGISTRY.unregister(gauges)
        if enforcer is not None:
            await enforcer.stop()

    async def outbound(app: web.Application) -> AsyncIterator[None]:
        # Client sessions need a running loop, so they are made here, not in build_app.
        sessions: list[aiohttp.ClientSession] = []
        if settings.obot_forward_url:
            state.http = aiohttp.ClientSession()
            sessions.append(state.http)
            app[obot_shim.FORWARDER] = ObotForwarder(
                settings.obot_forward_url, state.http, settings.obot_forward_timeout_s, settings.obot_token_cache_s
            )
        if tap is not None and tap.session is None:
            # The client must get the upstream's bytes as sent: no decompression on the way.
            tap.session = aiohttp.ClientSession(auto_decompress=False)
            sessions.append(tap.session)
        yield
        for session in sessions:
            await session.close()

    async def refusals(app: web.Application) -> AsyncIterator[None]:
        yield
        # The server has stopped taking requests: write every refusal still being counted.
        await state.refusals.close()
        if tap is not None and tap.refusals is not state.refusals:  # a tap built elsewhere keeps its own
            await tap.refusals.close()

    app.cleanup_ctx.append(refusals)
    app.cleanup_ctx.append(outbound)
    app.cleanup_ctx.append(enforcement)
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_post(INGEST_ROUTE, ingest_generic)
    obot_shim.add_routes(app)
    webhook.add_routes(app, decision_policy)
    cloudevents.add_routes(app)
    if tap is not None:
        app.add_subapp("/axonflow", build_tap_app(tap, settings.max_body_bytes))
    return app


def tap_port_app(app: web.Application) -> web.Application:
    """The ingest application's tap at the root of an application of its own (its own port), with the
    ingest's middlewares, state and limiter (one limiter for both ports)."""
    tap_app = build_tap_app(app[TAP], app[STATE].settings.max_body_bytes, middlewares=app.middlewares)
    tap_app[STATE], tap_app[LIMITER] = app[STATE], app[LIMITER]
    return tap_app


async def run_ingest(
    settings: Settings | None = None,
    stop: asyncio.Event | None = None,
    ingest: IngestSettings | None = None,
    decision_policy: DecisionPolicy | None = None,
    *,
    reuse_port: bool = False,
    create_topics: bool = True,
    clock: Clock = utcnow,
) -> None:
    """Serve until ``stop`` is set (``reuse_port``: one of several worker processes on one port;
    ``clock``: the time budget periods are judged at)."""
    settings = settings or Settings()
    ingest = ingest or IngestSettings()
    stop = stop or asyncio.Event()
    target = resolve(settings.kafka, settings.core)
    if create_topics:
        await ensure_gateledger_topics(settings.kafka, target)
    masker = Masker(salt=masking_salt(settings.core.data_dir))
    money = MoneySettings()
    enforcer = build_enforcer(ingest, settings.kafka, target, money.budgets_path(settings.core), money.teams_file,
                              clock)
    async with Publisher(settings.kafka, target, timeout_s=ingest.publish_timeout_s,
                         max_record_bytes=ingest.max_record_bytes) as publisher:
        app = build_app(publisher, ingest, masker, decision_policy=decision_policy, enforcer=enforcer)
        runners = [web.AppRunner(app, access_log=None)]
        await runners[0].setup()
        await web.TCPSite(runners[0], ingest.host, ingest.port, reuse_port=reuse_port or None).start()
        log.info("ingest listening on http://%s:%d", ingest.host, ingest.port)
        tap = app.get(TAP)
        if tap is not None and ingest.axonflow_port:
            # The same tap (session opened by the app's start-up above) also at the root of its own
            # port, for clients that cannot take a path prefix.
            tap_app = tap_port_app(app)
            tap_runner = web.AppRunner(tap_app, access_log=None)
            await tap_runner.setup()
            await web.TCPSite(tap_runner, ingest.host, ingest.axonflow_port, reuse_port=reuse_port or None).start()
            runners.append(tap_runner)
            log.info("AxonFlow tap listening on http://%s:%d", ingest.host, ingest.axonflow_port)
        try:
            await stop.wait()
        finally:
            # The tap's port first; the main app's clean-up then closes the tap's session.
            for runner in reversed(runners):
                await runner.cleanup()


def _serve(reuse_port: bool, create_topics: bool) -> None:
    """One serving process: run until SIGTERM or SIGINT."""

    # SIGUSR1's default action kills the process: until the loop's handler is installed below,
    # a drain request is remembered here instead (a worker still starting when `up` stops).
    signal.signal(signal.SIGUSR1, lambda *_: Drain.start())
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
    # SIGUSR1 in the loop: `up` is stopping, refuse new records.
    run_until_stopped(lambda stop: run_ingest(stop=stop, reuse_port=reuse_port, create_topics=create_topics),
                      {signal.SIGUSR1: Drain.start})


def main() -> None:
    """Entry point. With ``GATELEDGER_INGEST_WORKERS`` > 1, that many processes share the port.

    Ingest is CPU-bound in Python (validation, masking, the Kafka client); the kernel spreads
    connections over the workers (SO_REUSEPORT). The first process creates the topics before
    the others start (concurrent topic creation is unsafe on Tansu), and exits when any worker
    dies, so the supervisor restarts them all.
    """
    workers = IngestSettings().workers
    if workers <= 1:
        _serve(reuse_port=False, create_topics=True)
        return
    import multiprocessing

    # SIGUSR1 stays blocked (and pending) until this process and its workers can handle it: the
    # workers inherit the mask and unblock it in _serve; an early drain request never kills one.
    signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
    settings = Settings()
    asyncio.run(ensure_gateledger_topics(settings.kafka, resolve(settings.kafka, settings.core)))
    masking_salt(settings.core.data_dir)  # made once here, so the workers cannot race to create it
    ctx = multiprocessing.get_context("spawn")
    procs = [ctx.Process(target=_serve, args=(True, False), name=f"ingest-{i}", daemon=False) for i in range(workers)]
    for p in procs:
        p.start()
    stopping = False

    def _stop(*_: object) -> None:
        nonlocal stopping
        stopping = True
        for p in procs:
            if p.is_alive():
                p.terminate()

    signal.signal(signal.SIGTERM, _stop)
    signal.signal(signal.SIGINT, _stop)
    signal.signal(signal.SIGUSR1, lambda *_: [os.kill(p.pid, signal.SIGUSR1) for p in procs if p.pid])
    signal.pthread_sigmask(signal.SIG_UNBLOCK, {signal.SIGUSR1})
    code = 0
    while any(p.is_alive() for p in procs):
        for p in procs:
            p.join(0.5)
            if p.exitcode not in (None, 0) and not stopping:
                log.error("ingest worker %s exited with %s; stopping the others", p.name, p.exitcode)
                code = 1
                _stop()
    raise SystemExit(code)
