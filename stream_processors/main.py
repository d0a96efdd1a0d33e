"""Running the stream processors (``gateledger serve processors``)."""

from __future__ import annotations

import asyncio

import faust

from gateledger.kafka import ensure_gateledger_topics, ensure_topics, resolve, wait_for_broker
from gateledger.settings import Settings
from stream_processors.app import create_app
from stream_processors.budgets.backfill import MARKERS, markers_spec
from stream_processors.pipeline import internal_topic_name
from stream_processors.settings import ProcessorSettings


def new_event_loop(kind: str) -> asyncio.AbstractEventLoop:
    """A fresh event loop of the configured kind."""
    if kind == "uvloop":
        import uvloop

        return uvloop.new_event_loop()
    return asyncio.new_event_loop()


class Worker(faust.Worker):
    """faust's worker, closing its event loop without mode's one-second pause."""

    async def _sentinel_task(self) -> None:
        # mode (worker.py, _shutdown_loop) sleeps 1 s here once the app has stopped and every task
        # left was cancelled, before closing the loop; the cancelled tasks need a few loop turns,
        # and every worker stop and restart paid the second.
        await asyncio.sleep(0.1)


def main() -> None:
    """Create the topics, then run the faust worker until SIGTERM or SIGINT."""
    settings = Settings()
    proc = ProcessorSettings()
    target = resolve(settings.kafka, settings.core)

    async def _topics() -> None:
        await wait_for_broker(target.bootstrap)
        await ensure_gateledger_topics(settings.kafka, target)
        markers = internal_topic_name(target.topic_prefix, proc.app_id, MARKERS)
        await ensure_topics(settings.kafka, target.bootstrap, [markers_spec(markers, settings.kafka)])

    asyncio.run(_topics())
    # faust's Worker runs its own loop; give it a fresh one.
    asyncio.set_event_loop(new_event_loop(proc.event_loop))
    app = create_app(settings, proc, target=target)
    worker = Worker(app, loglevel="INFO", quiet=True, override_logging=False)
    worker.execute_from_commandline()
