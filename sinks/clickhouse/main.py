"""Running the ClickHouse sink as a service (``gateledger serve sink``)."""

from __future__ import annotations

import asyncio
import logging
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from aiohttp import web
from aiokafka import ConsumerRecord, TopicPartition

from gateledger.clickhouse.client import connect
from gateledger.clickhouse.migrate import migrate
from gateledger.clickhouse.query_token import ensure_query_token
from gateledger.clickhouse.results import QueryRunner
from gateledger.kafka import ensure_gateledger_topics, make_consumer, resolve
from gateledger.masking import Masker, masking_salt
from gateledger.settings import Settings
from gateledger.signals import run_until_stopped
from gateledger.tables import Table
from gateledger.topics import ALL_TOPICS, Topic, topic_name
from sinks.clickhouse.access_control import apply_from_settings
from sinks.clickhouse.http import build_app
from sinks.clickhouse.rows import TOPIC_TABLES, TableMapping, describe
from sinks.clickhouse.service import SinkService
from sinks.clickhouse.settings import SinkSettings
from sinks.clickhouse.writer import InsertFn, QueryFn, Writer

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


async def run_sink(
    settings: Settings | None = None,
    stop: asyncio.Event | None = None,
    sink: SinkSettings | None = None,
    *,
    insert_fn: InsertFn | None = None,
    query_fn: QueryFn | None = None,
    on_ready: Callable[[SinkService], None] | None = None,
) -> SinkService:
    """Migrate, then consume and land until ``stop`` is set; returns the service (for its counters).

    ``insert_fn`` / ``query_fn`` wrap the real ClickHouse calls (fault-injection tests); ``on_ready``
    is called with the service once it consumes.
    """
    settings = settings or Settings()
    sink = sink or SinkSettings()
    core, ch, kafka = settings.core, settings.clickhouse, settings.kafka
    stop = stop or asyncio.Event()
    chdb = ch.is_chdb(core)

    client = connect(ch, core)
    applied = migrate(client, ch)
    if applied:
        log.info("applied %d migration(s)", len(applied))
    if not chdb and sink.apply_server_ddl:
        try:
            apply_from_settings(client, ch, sink)
        except Exception as exc:  # the data must keep flowing; the operator must hear about it
            log.error("could not apply the analyst role and row policies (does the sink's user have "
                      "ACCESS MANAGEMENT?): %s", exc)
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
    dead_letters = by_table.get(Table.DEAD_LETTERS) or describe(client, ch.database, Table.DEAD_LETTERS)

    # chDB handles are not thread-safe and the engine serializes anyway: one client. A server takes
    # several concurrent inserts, one client each.
    clients = [client] + ([] if chdb else [connect(ch, core) for _ in range(sink.insert_concurrency - 1)])
    writer = Writer(clients, ch.database, insert_fn=insert_fn, query_fn=query_fn)
    masker = Masker(salt=masking_salt(core.data_dir))
    consumer = make_consumer(
        kafka, target, group_id=sink.group_id, max_poll_records=sink.fetch_max_records,
        # Several partitions' batches in one fetch: fewer round trips at full speed.
        max_partition_fetch_bytes=4 * 1024 * 1024,
    )

    async def fetch_range(tp: TopicPartition, first: int, last: int) -> list[ConsumerRecord]:
        """A recorded range read back outside the group (a replayed flush needs its other batches)."""
        reader = make_consumer(kafka, target, group_id=None, max_partition_fetch_bytes=4 * 1024 * 1024)
        await reader.start()
        try:
            reader.assign([tp])
            reader.seek(tp, first)
            out: list[ConsumerRecord] = []
            while True:
                got = (await reader.getmany(tp, timeout_ms=500, max_records=sink.fetch_max_records)).get(tp, [])
                out += [r for r in got if r.offset <= last]
                if got and got[-1].offset >= last:
                    return out
                hw = reader.highwater(tp)
                if not got and hw is not None and await reader.position(tp) >= hw:
                    return out  # the range's last messages are gone (retention, compaction)
        finally:
            await reader.stop()

    service = SinkService(sink, consumer, writer, mappings, dead_letters, masker, fetch_range=fetch_range)

    # On chDB this process owns the data directory, so it also answers queries for everyone else.
    # Unqualified table names in `gateledger sql` mean gateledger's tables, as in Grafana.
    runner = QueryRunner(connect(ch, core, database=ch.database)) if chdb else None
    app = build_app(
        runner,
        lambda: {"landed": service.landed, "buffered": service.buffered(), "buffered_bytes": service.buffered_bytes()},
        token=ensure_query_token(core.data_dir),
        query_timeout_s=sink.query_timeout_s,
        query_max_memory_bytes=sink.query_max_memory_bytes,
        allowed_hosts=frozenset(h.strip().lower() for h in sink.query_allowed_hosts.split(",") if h.strip()),
    )
    web_runner = web.AppRunner(app, access_log=None)
    await web_runner.setup()
    site = web.TCPSite(web_runner, sink.host, sink.port)
    await site.start()
    log.info("sink listening on http://%s:%d", sink.host, sink.port)

    await consumer.start()
    consumer.subscribe(list(mappings), listener=service.listener())
    run_task = asyncio.create_task(service.run())
    stop_task = asyncio.create_task(stop.wait())
    if on_ready is not None:
        on_ready(service)
    try:
        await asyncio.wait({run_task, stop_task}, return_when=asyncio.FIRST_COMPLETED)
        service.stop()
        await run_task  # flushes what is buffered; re-raises if the loop crashed
    finally:
        stop_task.cancel()
        await consumer.stop()
        await web_runner.cleanup()
        for c in clients:
            c.close()
        if runner is not None:
            runner.client.close()
    return service


def private_tmp(data_dir: Path) -> Path:
    """A temporary directory of this sink's own, emptied at start.

    chDB reads every insert from a temporary file; a SIGKILL between writing and removing it would
    leave it behind in the shared /tmp forever.
    """
    tmp = data_dir / "sink-tmp"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True, exist_ok=True)
    tempfile.tempdir = str(tmp)
    return tmp


def main() -> None:
    """Entry point: run until SIGTERM or SIGINT."""
    settings = Settings()
    if settings.clickhouse.is_chdb(settings.core):
        private_tmp(settings.core.data_dir)
    run_until_stopped(lambda stop: run_sink(settings, stop=stop))
