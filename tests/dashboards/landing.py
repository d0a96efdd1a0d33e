"""Landing simulated rows the way the sink does: ``describe(...).to_row`` on the model's JSON, then
``client.insert`` (``insert``), or that and the rollups fed as the sink feeds them (``land``)."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel

from gateledger.topics import Topic
from sinks.clickhouse.rollups import ROLLUP_SOURCES, RollupFeeder
from sinks.clickhouse.rows import describe
from sinks.clickhouse.writer import Writer
from tests.dashboards import simdata


def land(client: Any, database: str, sim: simdata.SimData, *, duplicates: bool = False) -> int:
    """Insert as ``insert`` does, one batch per version, and feed the rollups the way the sink does
    (sinks/clickhouse/rollups.py: what the table held before the batch, then the batch's changes)."""
    feeder = RollupFeeder(Writer(client, database))
    source = sim.duplicates if duplicates else sim.rows
    n = 0
    for table, models in source.items():
        rollup = ROLLUP_SOURCES.get(table)
        for version in sorted({getattr(m, "version", 1) for m in models}):
            batch = [m for m in models if getattr(m, "version", 1) == version]
            rows = [rollup.normalize(m.model_dump(mode="json")) for m in batch] if rollup else []
            prior = feeder.lookup(rollup, rows) if rollup else {}
            lines, columns = _to_rows(client, database, table, batch, n + (1_000_000 if duplicates else 0))
            client.insert(table, lines, column_names=columns, database=database)
            if rollup:
                feeder.feed(rollup, f"sim/{table}/{version}/{duplicates}/{n}", prior, rows)
            n += len(lines)
    return n


def _to_rows(
    client: Any, database: str, table: str, models: list[BaseModel], offset0: int
) -> tuple[list, list[str]]:
    mapping = describe(client, database, table)
    topic = "raw.sim" if table == "raw_events" else str(getattr(models[0], "topic", Topic.DEAD_LETTERS))
    rows = [mapping.to_row(m.model_dump(mode="json"), topic, 0, offset0 + i) for i, m in enumerate(models)]
    return rows, mapping.column_names


def insert(client: Any, database: str, sim: simdata.SimData, *, duplicates: bool = False) -> int:
    """Insert the rows (or the duplicates) the way the sink does; returns the number of rows written."""
    source = sim.duplicates if duplicates else sim.rows
    n = 0
    for table, models in source.items():
        if not models:
            continue
        rows, columns = _to_rows(client, database, table, models, 1_000_000 if duplicates else 0)
        client.insert(table, rows, column_names=columns, database=database)
        n += len(rows)
    return n
