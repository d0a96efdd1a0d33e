"""Running the ClickHouse sink as a service (``gateledger serve sink``)."""

from __future__ import annotations

import asyncio
import logging
import signal

from aiohttp import web

from gateledger.clickhouse.client import connect
from gateledger.clickhouse.migrate import migrate
from gateledger.clickhouse.results import QueryRunner
from gateledger.kafka import ensure_gateledger_topics, make_consumer, resolve
from gateledger.masking import Masker, masking_salt
from gateledger.settings import Settings
from gateledger.topics import ALL_TOPICS, Topic, topic_name
from sinks.clickhouse.http import build_app
from sinks.clickhouse.rows import TOPIC_TABLES, TableMapping, describe
from sinks.clickhouse.service import SinkService
from sinks.clickhouse.settings import SinkSettings
from sinks.clickhouse.writer import Writer

log = logging.getLogger(__name__)


def sink_topics(sink: SinkSettings) -> list[Topic]:
    """The logical topics this sink consumes."""
    if sink.topics.strip() == "all":
        return [t for t in ALL_TOPICS if t in TOPIC_TABLES]
    wanted = {t.strip() for t in sink.topics.split(",") if t.strip()}
    unknown = wanted - {str(t) for t in TOPIC_TABLES}
    if unknown:
        raise ValueError(f"GATELEDGER_SINK_TOPICS names unknown topics: {sorted(unknown)}")
    return [t for t in ALL_TOPICS if str(t) in wanted]


async def run_sink(settings: Settings | None = None, stop: asyncio.Event | None = None) -> None:
    """Migrate, then consume and land until ``stop`` is set."""
    settings = settings or Settings()
    sink = SinkSettings()
    core, ch, kafka = settings.core, settings.clickhouse, settings.kafka
    stop = stop or asyncio.Event()

    client = connect(ch, core)
    applied = migrate(client, ch)
    if applied:
        log.info("applied %d migration(s)", len(applied))
    target = resolve(kafka, core)
    await ensure_gateledger_topics(kafka, target)

    topics = sink_topics(sink)
    by_table: dict[str, TableMapping] = {}
    mappings: dict[str, TableMapping] = {}
    for t in topics:
        table = TOPIC_TABLES[t]
        if table not in by_table:
            by_table[table] = describe(client, ch.database, table)
        mappings[topic_name(t, target.topic_prefix)] = by_table[table]
    dead_letters = by_table.get("dead_letters") or describe(client, ch.database, "dead_letters")

    masker = Masker(salt=masking_salt(core.data_dir))
    writer = Writer(client, ch.database)
    consumer = make_consumer(kafka, target, group_id=sink.group_id, max_poll_records=sink.fetch_max_records)
    service = SinkService(sink, consumer, writer, mappings, dead_letters, masker)

    # On chDB this process owns the data directory, so it also answers queries for everyone else.
    runner = QueryRunner(connect(ch, core)) if ch.is_chdb(core) else None
    app = build_app(runner, lambda: {"landed": service.landed, "buffered": service.buffered()})
    web_runner = web.AppRunner(app, access_log=None)
    await web_runner.setup()
    site = web.TCPSite(web_runner, sink.host, sink.port)
    await site.start()
    log.info("sink listening on http://%s:%d", sink.host, sink.port)

    await consumer.start()
    consumer.subscribe(list(mappings), listener=service.listener())
    run_task = asyncio.create_task(service.run())
    stop_task = asyncio.create_task(stop.wait())
    try:
        done, _ = await asyncio.wait({run_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        service.stop()
        await run_task  # flushes what is buffered; re-raises if the loop crashed
    finally:
        stop_task.cancel()
        await consumer.stop()
        await web_runner.cleanup()
        client.close()
        if runner is not None:
            runner.client.close()


def main() -> None:
    """Entry point: run until SIGTERM or SIGINT."""

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        await run_sink(stop=stop)

    asyncio.run(_main())
