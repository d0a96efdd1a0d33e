"""Landing simulated rows the way the sink does, rollups included."""

from __future__ import annotations

from typing import Any

from sinks.clickhouse.rollups import ROLLUP_SOURCES, RollupFeeder
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
            lines, columns = simdata._to_rows(client, database, table, batch, n + (1_000_000 if duplicates else 0))
            client.insert(table, lines, column_names=columns, database=database)
            if rollup:
                feeder.feed(rollup, f"sim/{table}/{version}/{duplicates}/{n}", prior, rows)
            n += len(lines)
    return n
