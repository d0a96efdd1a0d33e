"""What analysts see: processor outputs landed in chDB as the sink lands them, read through the views.

Landing is the sink's own insert path without Kafka (sinks/clickhouse/service.py, flush_table
step 2): each topic's messages in the order they were produced, one batch per table, encoded by the
table's ``LineCodec`` and inserted by the sink's ``Writer`` with a batch token. The dashboards'
sink-fed rollups (steps 1 and 3) are left out: they cost seconds per landing and no analyst view
compared here reads them. Reading is the analysts' views (migrations 0006, 0040, 0060): the
``<table>_latest`` views (newest version per id, withdrawn rows left out) and
``interactions_with_cost``. A database is reused: ``reset`` empties every table between landings.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from sinks.clickhouse.lines import LineCodec
from sinks.clickhouse.rows import TOPIC_TABLES, describe
from sinks.clickhouse.writer import Writer
from stream_processors.common.emit import Emit

# Columns that say when something was computed or landed, or where a message sat in Kafka: they
# differ between two deliveries of the same conclusions by design.
WALL = {"emitted_at", "detected_at", "computed_at", "fired_at", "inserted_at", "kafka_topic",
        "kafka_partition", "kafka_offset"}
ALL_TIME = {"tenant": "", "since": "2000-01-01 00:00:00", "until": "2100-01-01 00:00:00"}
# Per view, columns that legitimately depend on the arrival order: a cost row's version counts the
# call versions priced on the way (each arrival order prices a different number of them).
ORDER_DEPENDENT = {"cost_ledger": {"version"}}
LATEST = ("interactions", "findings", "llm_calls", "mcp_calls", "policy_decisions", "webhook_decisions",
          "cost_ledger")
MIGRATIONS_TABLE = "schema_migrations"


@dataclass
class AnalystViews:
    """One migrated chDB database: land a run's outputs, read what analysts see."""

    client: Any
    database: str
    _codecs: dict[str, LineCodec] = field(default_factory=dict)

    def reset(self) -> None:
        """Empty every table (the migrations' bookkeeping stays)."""
        tables = self.client.query(
            "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree%'"
            " AND name != {m:String}", parameters={"db": self.database, "m": MIGRATIONS_TABLE}).result_rows
        for (table,) in tables:
            self.client.command(f"TRUNCATE TABLE `{self.database}`.`{table}`")

    def land(self, outputs: Iterable[Emit]) -> None:
        """The messages as the sink lands them: one batch per table, in production order."""
        by_table: dict[str, list[tuple[str, bytes]]] = {}
        tables = {str(t): table for t, table in TOPIC_TABLES.items()}
        for e in outputs:
            if e.value is not None and e.topic in tables:
                by_table.setdefault(tables[e.topic], []).append((e.topic, e.value))
        writer = Writer(self.client, self.database)
        run = uuid.uuid4().hex[:12]  # a fresh deduplication token per landing (tables are reused)
        for table, messages in by_table.items():
            codec = self._codecs.get(table) or self._codecs.setdefault(
                table, LineCodec.for_mapping(describe(self.client, self.database, table)))
            lines = [codec.encode(raw, codec.parse(raw), topic, 0, off)
                     for off, (topic, raw) in enumerate(messages)]
            refused = writer.insert_isolating(table, lines, f"{run}/{table}")
            assert not refused, (table, refused[:3])

    def seen(self) -> dict[str, Any]:
        """Every view's rows, keyed so two landings compare exactly (wall-clock columns left out)."""
        out: dict[str, Any] = {}
        for table in LATEST:
            out[table] = self._rows(f"SELECT * FROM {self.database}.{table}_latest({self._params()})", "id",
                                    ORDER_DEPENDENT.get(table, set()))
        # Which alerts fired. Not their time, spend or triggering call: the cost rows reach the budget
        # stage in the order their calls were priced, so which call crossed a threshold depends on it.
        alerts = self.client.query(
            f"SELECT budget_id, period_key, kind, threshold_pct FROM {self.database}.budget_alerts_latest("
            f"{self._params()}) ORDER BY ALL")
        out["budget_alerts"] = [tuple(r) for r in alerts.result_rows]
        out["interactions_with_cost"] = self._rows(
            f"SELECT * FROM {self.database}.interactions_with_cost({self._params()})", "id")
        return out

    def _params(self) -> str:
        return ", ".join(f"{k} = '{v}'" for k, v in ALL_TIME.items())

    def _rows(self, sql: str, key: str, skip: set[str] = frozenset()) -> dict[str, dict[str, Any]]:
        result = self.client.query(sql)
        names = result.column_names
        rows: dict[str, dict[str, Any]] = {}
        for values in result.result_rows:
            row = {n: v for n, v in zip(names, values, strict=True) if n not in WALL and n not in skip}
            assert row[key] not in rows, f"two rows for one id in a view: {sql}"
            rows[row[key]] = row
        return rows
