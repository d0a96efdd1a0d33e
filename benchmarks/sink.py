"""Measuring the sink: insert paths, batch sizes, and end-to-end rows/s from Kafka into chDB.

Each function returns a plain dict (the benchmark issue's ``gateledger bench`` reuses them); run
``python -m benchmarks.sink [insert-paths|batch-sizes|end-to-end|views|all] [--rows N] [--json FILE]``
to print a table. chDB allows one data directory per process: every function here opens its own
temporary one unless given a client, so call them in a fresh process (as the CLI does).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import orjson

from gateledger.clickhouse.client import connect
from gateledger.clickhouse.migrate import migrate
from gateledger.contracts.events import McpCall
from gateledger.settings import ClickHouseSettings, CoreSettings, KafkaSettings, Settings
from sinks.clickhouse.batchlog import BatchLog
from sinks.clickhouse.lines import LineCodec
from sinks.clickhouse.rollups import ROLLUP_SOURCES, RollupFeeder
from sinks.clickhouse.rows import describe
from sinks.clickhouse.settings import SinkSettings
from sinks.clickhouse.writer import INSERT_SETTINGS, Writer

DB = "bench"


# -- data ---------------------------------------------------------------------------------------


def mcp_messages(n: int, start: int = 0) -> list[bytes]:
    """n realistic mcp_calls messages as the processors publish them (~1.1 KB each)."""
    now = datetime.now(UTC)
    out = []
    for i in range(start, start + n):
        out.append(McpCall(
            id=f"bench-{i:010d}", tenant=f"tenant-{i % 5}", time=now - timedelta(milliseconds=i), source="obot/b/mcp",
            user_id=f"user-{i % 300}", client_name="Cursor", client_version="1.7.2", client_ip="10.1.2.3",
            mcp_server_id=f"srv-{i % 20}", mcp_server_name=f"Server {i % 20}", method="tools/call",
            tool_name=f"tool-{i % 50}", status="success" if i % 10 else "failure", http_status=200,
            duration_ms=i % 3000, session_id=f"s-{i % 1000}", jsonrpc_id=str(i), request_id=f"req-{i}",
            webhook_statuses=[{"type": "request", "name": "dlp", "status": "ok"}],
            request_body='{"jsonrpc":"2.0","method":"tools/call","params":{"name":"x","arguments":{"q":"bug"}}}',
            response_body='{"jsonrpc":"2.0","result":{"content":[{"type":"text","text":"42 issues"}]}}',
            event_ids=[f"e{i}a", f"e{i}b"],
        ).model_dump_json().encode())
    return out


def raw_messages(n: int, start: int = 0) -> list[bytes]:
    """n raw envelopes (~600 B each) as the producers publish them."""
    now = datetime.now(UTC).isoformat().replace("+00:00", "Z")
    return [
        orjson.dumps({
            "specversion": "1.0", "id": f"raw-{i:010d}", "source": "obot/b/llm", "type": "obot.llm.call",
            "time": now, "received_at": now, "tenant": f"tenant-{i % 5}", "subject": f"user-{i % 300}",
            "request_id": f"req-{i}", "session_id": f"s-{i % 1000}",
            "data": {"id": f"llm-{i}", "modelProvider": "openai", "modelID": "gpt-4o", "inputTokens": 1200,
                     "outputTokens": 300, "requestHeaders": {"Authorization": "[REDACTED]"},
                     "requestBody": {"messages": [{"role": "user", "content": "email:0123456789ab"}]}},
        })
        for i in range(start, start + n)
    ]


@contextlib.contextmanager
def chdb_client(path: Path | None = None) -> Iterator[tuple[Any, ClickHouseSettings]]:
    """A migrated chDB client on a temporary (or given) directory."""
    tmp = Path(tempfile.mkdtemp(prefix="gl-bench-")) if path is None else path
    ch = ClickHouseSettings(url=f"chdb://{tmp / 'ch'}", database=DB)
    client = connect(ch, CoreSettings(data_dir=tmp))
    migrate(client, ch)
    try:
        yield client, ch
    finally:
        client.close()
        if path is None:
            shutil.rmtree(tmp, ignore_errors=True)


def _median_rate(n: int, runs: list[float]) -> float:
    return round(n / statistics.median(runs))


def _timed(reps: int, setup: Callable[[], None], fn: Callable[[], None]) -> list[float]:
    runs = []
    for _ in range(reps):
        setup()
        t = time.perf_counter()
        fn()
        runs.append(time.perf_counter() - t)
    return runs


# -- insert paths -------------------------------------------------------------------------------


def insert_paths(
    rows: int = 50_000, batch: int = 10_000, reps: int = 3, client: Any = None, database: str = DB
) -> dict[str, Any]:
    """Rows/s from Kafka message bytes to rows in chDB, per insert path and table (median of reps)."""
    with contextlib.ExitStack() as stack:
        if client is None:
            client, _ = stack.enter_context(chdb_client())
        import pyarrow as pa

        results: dict[str, Any] = {"rows": rows, "batch": batch, "reps": reps, "tables": {}}
        for table, msgs in (("mcp_calls", mcp_messages(rows)), ("raw_events", raw_messages(rows))):
            mapping = describe(client, database, table)
            codec = LineCodec.for_mapping(mapping)
            q = f"{database}.{table}"
            plain_types = [t[len("LowCardinality("):-1] if t.startswith("LowCardinality(") else t
                           for t in mapping.type_names]
            chunks = [msgs[i : i + batch] for i in range(0, rows, batch)]

            def mapped(chunk: list[bytes], base: int) -> list[list[Any]]:
                return [mapping.to_row(orjson.loads(m), "t", 0, base + j) for j, m in enumerate(chunk)]

            def row_insert() -> None:  # the foundation's path: Python converts every value, row-oriented
                for k, chunk in enumerate(chunks):
                    client.insert(q, mapped(chunk, k * batch), column_names=mapping.column_names,
                                  column_type_names=mapping.type_names, settings={"async_insert": 0})

            def native_columnar() -> None:  # same conversion, column-oriented, LowCardinality sent plain
                for k, chunk in enumerate(chunks):
                    cols = [list(c) for c in zip(*mapped(chunk, k * batch), strict=True)]
                    client.insert(q, cols, column_names=mapping.column_names, column_type_names=plain_types,
                                  column_oriented=True, settings={"async_insert": 0})

            def arrow() -> None:
                for k, chunk in enumerate(chunks):
                    cols = zip(*mapped(chunk, k * batch), strict=True)
                    tbl = pa.table({n: pa.array(list(c)) for n, c in zip(mapping.column_names, cols, strict=True)})
                    client.insert_arrow(q, tbl, settings={"async_insert": 0})

            def json_unchecked() -> None:  # ClickHouse parses; no Python look at the messages at all
                for k, chunk in enumerate(chunks):
                    lines = chunk if not codec.kafka_columns else [
                        b'{"kafka_topic":"t","kafka_partition":0,"kafka_offset":%d,' % (k * batch + j) + m[1:]
                        for j, m in enumerate(chunk)]
                    client.raw_insert(q, None, b"\n".join(lines), settings=INSERT_SETTINGS, fmt="JSONEachRow")

            def json_checked() -> None:  # the sink's path: LineCodec checks, ClickHouse parses
                for k, chunk in enumerate(chunks):
                    lines = [codec.encode(m, codec.parse(m), "t", 0, k * batch + j) for j, m in enumerate(chunk)]
                    client.raw_insert(q, None, b"\n".join(lines), settings=INSERT_SETTINGS, fmt="JSONEachRow")

            paths = {"row_insert": row_insert, "native_columnar": native_columnar, "arrow": arrow,
                     "jsoneachrow_unchecked": json_unchecked, "jsoneachrow_checked (sink)": json_checked}
            out = {}
            for name, fn in paths.items():
                runs = _timed(reps, lambda: client.command(f"TRUNCATE TABLE {q}"), fn)
                (landed,), = client.query(f"SELECT count() FROM {q}").result_rows
                if landed != rows:
                    raise AssertionError(f"{name} landed {landed} of {rows} rows in {table}")
                out[name] = _median_rate(rows, runs)
            results["tables"][table] = out
        return results


# -- batch sizes --------------------------------------------------------------------------------


def batch_sizes(
    sizes: tuple[int, ...] = (500, 2000, 5000, 10_000, 20_000, 50_000), rows: int = 100_000, reps: int = 3,
    client: Any = None, database: str = DB,
) -> dict[str, Any]:
    """Rows/s of the whole flush (batch log, rollup snapshot, insert, rollup feed) per batch size, mcp_calls."""
    with contextlib.ExitStack() as stack:
        if client is None:
            client, _ = stack.enter_context(chdb_client())
        writer = Writer(client, database)
        log, feeder = BatchLog(writer), RollupFeeder(writer)
        codec = LineCodec.for_mapping(describe(client, database, "mcp_calls"))
        source = ROLLUP_SOURCES["mcp_calls"]
        from aiokafka import TopicPartition

        tp = TopicPartition("bench.mcp.calls", 0)
        results: dict[str, Any] = {"rows": rows, "reps": reps, "rows_per_s": {}, "latency_s": {}}
        template = mcp_messages(max(rows, *sizes))
        generation = 0
        for size in sizes:
            n = max(size, rows - rows % size)
            latencies: list[float] = []

            def flush_all(n: int = n, size: int = size) -> None:
                nonlocal generation
                generation += 1
                # fresh ids per run, so every run inserts new events (as in steady state)
                tag = b'"id":"g%d-' % generation
                msgs = [m.replace(b'"id":"', tag, 1) for m in template[:n]]
                for first in range(0, n, size):
                    chunk = msgs[first : first + size]
                    objs = [codec.parse(m) for m in chunk]
                    lines = [codec.encode(m, o, tp.topic, 0, first + j) for j, (m, o) in enumerate(zip(chunk, objs))]
                    rows_ = [source.normalize(o) for o in objs]
                    token = f"{tp.topic}:{generation}:{first}-{first + len(chunk) - 1}"
                    t = time.perf_counter()  # latency: the ClickHouse steps of one flush
                    log.record(tp, first, first + len(chunk) - 1)
                    prior = feeder.snapshot(source, token, rows_)
                    writer.insert_isolating("mcp_calls", lines, token)
                    feeder.feed(source, token, prior, rows_)
                    latencies.append(time.perf_counter() - t)

            runs = _timed(reps, lambda: client.command(f"TRUNCATE TABLE {database}.mcp_calls"), flush_all)
            results["rows_per_s"][str(size)] = _median_rate(n, runs)
            results["latency_s"][str(size)] = round(statistics.median(latencies), 4)
        return results


# -- views ---------------------------------------------------------------------------------------


def view_strategies(
    rows: int = 10_000_000, reps: int = 3, client: Any = None, database: str = DB
) -> dict[str, Any]:
    """Milliseconds to collapse a day and a month of versioned rows: FINAL inside the range vs alternatives."""
    with contextlib.ExitStack() as stack:
        if client is None:
            client, _ = stack.enter_context(chdb_client())
        t = f"{database}.view_bench"
        client.command(f"DROP TABLE IF EXISTS {t}")
        client.command(f"CREATE TABLE {t} (id String, version UInt32, tenant LowCardinality(String), "
                       "time DateTime64(6, 'UTC'), status LowCardinality(String), v Int64) "
                       "ENGINE = ReplacingMergeTree(version) PARTITION BY toYYYYMM(time) ORDER BY (tenant, time, id)")
        # rows over 60 days, 5 tenants; 1 % re-emitted as version 2, 1 % delivered twice
        gen = (f"SELECT toString(number), {{v}}, concat('t', toString(number % 5)), "
               f"toDateTime64('2026-01-01', 6, 'UTC') + toIntervalMillisecond(number * {int(5_184_000_000 / rows)}), "
               f"{{status}}, number FROM numbers({rows})")
        client.command(f"INSERT INTO {t} " + gen.format(v=1, status="if(number % 10 = 0, 'failure', 'success')"),
                       settings={"async_insert": 0})
        client.command(f"INSERT INTO {t} " + gen.format(v=2, status="'success'") + " WHERE number % 100 = 0",
                       settings={"async_insert": 0})
        client.command(f"INSERT INTO {t} " + gen.format(v=1, status="if(number % 10 = 0, 'failure', 'success')")
                       + " WHERE number % 100 = 1", settings={"async_insert": 0, "insert_deduplicate": 0})
        where = ("time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')} "
                 "AND ({tenant:String} = '' OR tenant = {tenant:String})")
        views = {
            "final_in_range": f"SELECT * FROM {t} FINAL WHERE {where}",
            "limit_1_by": f"SELECT * FROM {t} WHERE {where} ORDER BY tenant, time, id, version DESC LIMIT 1 BY tenant, time, id",
            "argmax_group_by": f"SELECT tenant, time, id, last.1 AS status, last.2 AS v FROM (SELECT tenant, time, id, "
                               f"argMax((status, v), version) AS last FROM {t} WHERE {where} GROUP BY tenant, time, id)",
        }
        for name, sql in views.items():
            client.command(f"CREATE OR REPLACE VIEW {t}_{name} AS {sql}")
        ranges = {"one_tenant_one_day": "tenant = 't1', since = '2026-01-10', until = '2026-01-11'",
                  "all_tenants_one_month": "tenant = '', since = '2026-01-01', until = '2026-02-01'"}
        out: dict[str, Any] = {"rows": rows, "reps": reps, "ms": {}}
        answers = set()
        for rname, args in ranges.items():
            for name in views:
                q = f"SELECT count(), countIf(status = 'failure'), sum(v) FROM {t}_{name}({args})"
                runs = []
                for _ in range(reps):
                    started = time.perf_counter()
                    answers.add((rname, tuple(client.query(q).result_rows[0])))
                    runs.append(time.perf_counter() - started)
                out["ms"].setdefault(rname, {})[name] = round(statistics.median(runs) * 1000, 1)
        if len(answers) != len(ranges):
            raise AssertionError(f"the strategies disagree: {answers}")
        client.command(f"DROP TABLE IF EXISTS {t}")
        return out


# -- end to end ---------------------------------------------------------------------------------


async def _end_to_end(rows: int, bootstrap: str, data_dir: Path, sink: SinkSettings) -> dict[str, Any]:
    from gateledger.kafka import ensure_gateledger_topics, make_producer, resolve
    from gateledger.topics import Topic, topic_name
    from sinks.clickhouse.main import run_sink

    prefix = f"bench{int(time.time())}."
    settings = Settings()
    settings.__dict__["core"] = CoreSettings(data_dir=data_dir, topic_prefix=prefix)
    settings.__dict__["kafka"] = KafkaSettings(bootstrap_servers=bootstrap, tansu_workarounds="true",
                                               session_timeout_ms=3000, heartbeat_interval_ms=500)
    settings.__dict__["clickhouse"] = ClickHouseSettings(url=f"chdb://{data_dir / 'ch'}", database=DB)
    target = resolve(settings.kafka, settings.core)
    await ensure_gateledger_topics(settings.kafka, target)
    half = rows // 2
    producer = make_producer(settings.kafka, target)
    await producer.start()
    try:
        futures = []
        for topic, msgs in ((Topic.MCP_CALLS, mcp_messages(half)), (Topic.RAW_OBOT_LLM, raw_messages(rows - half))):
            for i, m in enumerate(msgs):
                futures.append(await producer.send(topic_name(topic, prefix), value=m, key=str(i).encode()))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    # Everything is in Kafka before the sink starts: the figure is the sink's own rate.
    stop = asyncio.Event()
    started: dict[str, Any] = {}

    def ready(service: Any) -> None:
        started["service"] = service

    task = asyncio.create_task(run_sink(settings, stop, sink, on_ready=ready))
    while "service" not in started:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    service = started["service"]
    while service.landed == 0:
        await asyncio.sleep(0.005)
    t0, first = time.perf_counter(), service.landed
    while service.landed < rows:
        if task.done():
            task.result()
        await asyncio.sleep(0.01)
    elapsed = time.perf_counter() - t0
    stop.set()
    await task
    return {"rows": rows, "tables": ["mcp_calls", "raw_events"], "batch_max_rows": sink.batch_max_rows,
            "seconds": round(elapsed, 3), "rows_per_s": round((rows - first) / elapsed)}


def end_to_end(rows: int = 200_000, bootstrap: str | None = None, batch_max_rows: int | None = None) -> dict[str, Any]:
    """Rows/s through the real sink: Kafka (a Tansu broker, started unless given) -> sink -> chDB."""
    from gateledger.stack.broker import TansuBroker

    data_dir = Path(tempfile.mkdtemp(prefix="gl-bench-e2e-"))
    sink = SinkSettings(**({"batch_max_rows": batch_max_rows} if batch_max_rows else {}))
    broker = None
    try:
        if bootstrap is None:
            broker = TansuBroker(log_path=data_dir / "broker.log")
            broker.start()
            bootstrap = broker.bootstrap
        return asyncio.run(_end_to_end(rows, bootstrap, data_dir, sink))
    finally:
        if broker is not None:
            broker.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


# -- command line -------------------------------------------------------------------------------


def _print(name: str, result: dict[str, Any]) -> None:
    print(f"\n== {name}")
    print(orjson.dumps(result, option=orjson.OPT_INDENT_2, default=str).decode())


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """CLI: run the chosen measurements, print them, optionally write JSON."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.sink", description=__doc__)
    p.add_argument("what", choices=["insert-paths", "batch-sizes", "end-to-end", "views", "all"], default="all",
                   nargs="?")
    p.add_argument("--rows", type=int, default=None)
    p.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    results: dict[str, Any] = {"when": datetime.now(UTC).isoformat()}
    if args.what in ("insert-paths", "all"):
        results["insert_paths"] = insert_paths(rows=args.rows or 50_000)
        _print("insert paths (rows/s, message bytes -> chDB)", results["insert_paths"])
    if args.what in ("batch-sizes", "all"):
        results["batch_sizes"] = batch_sizes(rows=args.rows or 100_000)
        _print("flush rows/s by batch size (mcp_calls with rollups)", results["batch_sizes"])
    if args.what in ("end-to-end", "all"):
        results["end_to_end"] = end_to_end(rows=args.rows or 200_000)
        _print("end to end (Kafka -> sink -> chDB)", results["end_to_end"])
    if args.what in ("views", "all"):
        results["views"] = view_strategies(rows=args.rows or 10_000_000)
        _print("collapsing versions: milliseconds per query", results["views"])
    if args.json:
        args.json.write_bytes(orjson.dumps(results, option=orjson.OPT_INDENT_2, default=str))
    return results


if __name__ == "__main__":
    main()
