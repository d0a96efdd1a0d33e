"""Running the notifier as a service (``gateledger serve notifier``)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any

import aiohttp
from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateledger.kafka import ensure_gateledger_topics, make_consumer, make_producer, resolve
from gateledger.masking import Masker, masking_salt
from gateledger.refusals import AIOHTTP_REASONS, mark_reached, unrouted_refusals
from gateledger.settings import Settings
from gateledger.signals import run_until_stopped
from gateledger.topics import Topic, topic_name
from gateledger import jsonutil
from gateledger.contracts.events import DeadLetter
from sinks.notifier import telemetry
from sinks.notifier.alertmanager import AlertmanagerRelay
from sinks.notifier.sent_store import KafkaSentStore
from sinks.notifier.service import NotifierService
from sinks.notifier.settings import NotifierSettings

log = logging.getLogger(__name__)


def _http_app(service: NotifierService, relay: AlertmanagerRelay | None = None) -> web.Application:
    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True, "handled": service.handled})

    @web.middleware
    async def refusals(request: web.Request, handler: Any) -> web.StreamResponse:
        # aiohttp's own refusals (a wrong method or path on this port) are accounted for as the relay's are.
        mark_reached(request)
        try:
            return await handler(request)
        except web.HTTPException as exc:
            if relay is None or not 400 <= exc.status < 500:
                raise
            resource = request.match_info.route.resource
            return relay.refused(request, exc.status, AIOHTTP_REASONS.get(exc.status, "bad_request"), exc.reason,
                                 origin=f"http:{resource.canonical if resource is not None else 'unmatched'}")

    # What aiohttp refuses before this middleware (a malformed request) is counted by the relay too.
    app = web.Application(middlewares=[refusals],
                          handler_args=unrouted_refusals(lambda: relay.refusals if relay else None, "http"))
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    if relay is not None:
        app.router.add_post("/alertmanager", relay.handle)
    return app


async def run_notifier(settings: Settings | None = None, stop: asyncio.Event | None = None,
                       notifier: NotifierSettings | None = None,
                       after_mark: Callable[[str, str], None] | None = None) -> None:
    """Load the sent store, then deliver alerts until ``stop`` is set."""
    settings = settings or Settings()
    notifier = notifier or NotifierSettings()
    stop = stop or asyncio.Event()
    targets = notifier.targets()
    if not targets:
        log.warning("no webhooks configured (GATELEDGER_NOTIFIER_WEBHOOKS): alerts are consumed and not sent")
    kafka, core = settings.kafka, settings.core
    target = resolve(kafka, core)
    await ensure_gateledger_topics(kafka, target)
    prefix = target.topic_prefix
    producer = make_producer(kafka, target, linger_ms=0)
    await producer.start()
    consumer = make_consumer(kafka, target, topic_name(Topic.BUDGET_ALERTS, prefix), group_id=notifier.group_id)
    session = aiohttp.ClientSession()
    runner: web.AppRunner | None = None
    relay: AlertmanagerRelay | None = None
    try:
        store = KafkaSentStore(kafka, target, topic_name(Topic.NOTIFIER_SENT, prefix), producer)
        await store.load()
        masker = Masker(salt=masking_salt(core.data_dir))
        dead_topic = topic_name(Topic.DEAD_LETTERS, prefix)
        service = NotifierService(notifier, consumer, producer, store, session, targets, dead_topic, masker,
                                  after_mark=after_mark)

        async def dead_letter(letter: DeadLetter) -> None:
            await producer.send_and_wait(dead_topic, jsonutil.dumps(letter.model_dump(mode="json")),
                                         key=letter.id.encode())
            telemetry.DEAD_LETTERS.labels(letter.reason).inc()

        # Served only once the sent store is loaded: a repeat is recognised from the first request.
        relay = AlertmanagerRelay(notifier, targets, store, session, dead_letter, masker)
        runner = web.AppRunner(_http_app(service, relay), access_log=None)
        await runner.setup()
        await web.TCPSite(runner, notifier.host, notifier.port).start()
        await consumer.start()
        run_task = asyncio.create_task(service.run())
        stop_task = asyncio.create_task(stop.wait())
        try:
            await asyncio.wait({run_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
            service.stop()
            await run_task
        finally:
            stop_task.cancel()
    finally:
        if runner is not None:
            await runner.cleanup()
        if relay is not None:
            await relay.close()  # the refusals still being counted, before the producer goes
        await consumer.stop()
        await session.close()
        await producer.stop()


def main() -> None:
    """Entry point: run until SIGTERM or SIGINT."""
    run_until_stopped(lambda stop: run_notifier(stop=stop))
