"""`gateledger status`: the stack, consumer lag per group, rows per table."""

from __future__ import annotations

import asyncio
from typing import Any

import click

from gateledger import jsonutil
from gateledger_cli.tables import TABLE_ROWS_SQL, format_counts, table_rows
from gateledger.clickhouse.access import QueryError, open_querier
from gateledger.clickhouse.client import ChdbLocked
from gateledger.kafka import BrokerNotConfigured, consumer_group_lag, resolve
from gateledger.settings import Settings
from gateledger.stack.state import load_running
from gateledger.topics import RAW_TOPICS, topic_name


def _groups(settings: Settings) -> dict[str, list[str]]:
    from sinks.clickhouse.main import sink_topics
    from sinks.clickhouse.settings import SinkSettings
    from stream_processors.settings import ProcessorSettings

    prefix = settings.core.topic_prefix
    running = load_running(settings.core.data_dir)
    if running is not None:
        prefix = running.topic_prefix
    sink = SinkSettings()
    return {
        sink.group_id: [topic_name(t, prefix) for t in sink_topics(sink)],
        ProcessorSettings().app_id: [topic_name(t, prefix) for t in RAW_TOPICS],
    }


def collect(settings: Settings) -> dict[str, Any]:
    """Everything status shows, as data."""
    out: dict[str, Any] = {"stack": None, "consumer_groups": {}, "tables": {}, "errors": []}
    running = load_running(settings.core.data_dir)
    if running is not None:
        out["stack"] = running.model_dump(mode="json")
    try:
        target = resolve(settings.kafka, settings.core)
        for group, topics in _groups(settings).items():
            lags = asyncio.run(consumer_group_lag(settings.kafka, target.bootstrap, group, topics))
            out["consumer_groups"][group] = {
                "lag": sum(p.lag for p in lags),
                "partitions": [
                    {"topic": p.topic, "partition": p.partition, "committed": p.committed,
                     "highwater": p.highwater, "lag": p.lag}
                    for p in lags
                ],
            }
    except BrokerNotConfigured as exc:
        out["errors"].append(str(exc))
    except Exception as exc:  # status reports problems instead of failing on them
        out["errors"].append(f"kafka: {exc}")
    try:
        querier = open_querier(settings)
        try:
            out["tables"] = table_rows(querier.run(TABLE_ROWS_SQL, {"db": settings.clickhouse.database}))
        finally:
            querier.close()
    except (QueryError, ChdbLocked) as exc:
        out["errors"].append(f"clickhouse: {exc}")
    return out


def print_status(as_json: bool) -> int:
    """Print status; exit code 0 when everything could be read, 1 otherwise."""
    data = collect(Settings())
    if as_json:
        click.echo(jsonutil.dumps_str(data))
        return 1 if data["errors"] else 0
    stack = data["stack"]
    if stack:
        click.echo(f"stack: running (pid {stack['pid']}, since {stack['started_at']})")
        click.echo(f"  kafka {stack['kafka_bootstrap']}   ingest {stack['ingest_url']}   sink {stack['sink_url']}")
    else:
        click.echo("stack: not running")
    if data["consumer_groups"]:
        click.echo("consumer lag:")
        for group, info in data["consumer_groups"].items():
            click.echo(f"  {group:<28} {info['lag']:>10,} messages behind")
    click.echo("tables (rows):")
    click.echo(format_counts(data["tables"]))
    for err in data["errors"]:
        click.echo(f"warning: {err}", err=True)
    return 1 if data["errors"] else 0
