"""The analysts' schema, read back from chDB: aligned with the contracts, laid out for the questions asked."""

from __future__ import annotations

import typing
from decimal import Decimal

from gateledger.clickhouse.migrate import load_migrations, render
from gateledger.contracts.events import OUTPUT_MODELS
from gateledger.settings import ClickHouseSettings, Settings
from gateledger.tables import DECISION_FEED_COLUMNS, ROLLUP_FEED_COLUMNS, Table

SINK_FILLED = {"inserted_at", "kafka_topic", "kafka_partition", "kafka_offset"}
ROLLUPS = ("usage_per_minute", "cost_daily")


def _tables(client, db: str) -> dict[str, dict[str, str]]:
    rows = client.query("SELECT table, name, type FROM system.columns WHERE database = {db:String}",
                        parameters={"db": db}).result_rows
    out: dict[str, dict[str, str]] = {}
    for table, name, type_ in rows:
        out.setdefault(table, {})[name] = type_
    return out


def _is_money(annotation: object) -> bool:
    return annotation is Decimal or Decimal in typing.get_args(annotation)


def test_every_contract_field_has_its_column_and_money_is_decimal(settings: Settings, ch_client) -> None:
    tables = _tables(ch_client, settings.clickhouse.database)
    for model in OUTPUT_MODELS:
        columns = tables[model.table]
        fields = set(model.model_fields)
        # The sink maps JSON fields to columns by name: a field without a column would be dropped.
        assert fields - set(columns) == set(), model.table
        assert set(columns) - fields - SINK_FILLED == set(), model.table
        for name, info in model.model_fields.items():
            if _is_money(info.annotation):
                assert "Decimal(38, 12)" in columns[name], (model.table, name, columns[name])
        assert columns["time"] == "DateTime64(6, 'UTC')"
        assert columns["tenant"] == "LowCardinality(String)"
    # The feed column lists spelled once in gateledger/tables.py are the migrated feeds' columns.
    assert set(tables[Table.ROLLUP_FEED]) == set(ROLLUP_FEED_COLUMNS)
    assert set(tables[Table.DECISION_FEED]) == set(DECISION_FEED_COLUMNS)


def test_layout_tenant_and_time_first_monthly_partitions_ttl_everywhere(settings: Settings, ch_client) -> None:
    db = settings.clickhouse.database
    rows = ch_client.query(
        "SELECT name, engine, sorting_key, partition_key, create_table_query FROM system.tables"
        " WHERE database = {db:String} AND engine LIKE '%MergeTree'", parameters={"db": db}).result_rows
    info = {r[0]: r[1:] for r in rows}
    data_tables = [m.table for m in OUTPUT_MODELS] + ["raw_events"]
    for table in data_tables:
        engine, sorting, partition, ddl = info[table]
        assert engine == "ReplacingMergeTree", table
        assert sorting == "tenant, time, id", table
        assert partition == "toYYYYMM(time)", table
        assert "TTL toDateTime(time) + toIntervalDay(" in ddl, table
        assert "CONSTRAINT time_set CHECK" in ddl and "CONSTRAINT id_set CHECK" in ddl, table
    for table in ROLLUPS:
        engine, sorting, partition, ddl = info[table]
        assert engine == "AggregatingMergeTree" and sorting.startswith("tenant, ") and "TTL" in ddl, table
    # Raw payloads expire before the metadata.
    assert "`data` String TTL toDateTime(time) + toIntervalDay(30)" in info["raw_events"][3].replace(
        " CODEC(ZSTD(3))", "")
    assert "toIntervalDay(395)" in info["raw_events"][3]
    assert "toIntervalDay(2557)" in info["cost_ledger"][3]


def test_ttls_come_from_settings() -> None:
    ch = ClickHouseSettings(database="gl", ttl_raw_days=7, ttl_days=100, ttl_ledger_days=3650, ttl_rollup_days=60,
                            ttl_dead_letter_days=14)
    sql = "\n".join(s for m in load_migrations() for s in render(m, ch))
    assert "INTERVAL 7 DAY" in sql and "INTERVAL 100 DAY" in sql and "INTERVAL 3650 DAY" in sql
    assert "minute + INTERVAL 60 DAY" in sql and "INTERVAL 14 DAY" in sql
    assert "$" not in sql.replace("$$", "")


def test_views_exist_for_every_table_and_filter_by_the_primary_key(settings: Settings, ch_client) -> None:
    db = settings.clickhouse.database
    views = {r[0] for r in ch_client.query("SELECT name FROM system.tables WHERE database = {db:String}"
                                           " AND engine = 'View'", parameters={"db": db}).result_rows}
    expected = {f"{m.table}_latest" for m in OUTPUT_MODELS} | {"raw_events_latest", "usage_per_minute_v",
                                                               "cost_daily_v", "user_activity"}
    assert expected <= views
    for day in ("2026-01-10", "2026-03-10"):
        ch_client.raw_insert(f"{db}.mcp_calls", None, f'{{"id":"x{day}","tenant":"acme","time":"{day} 10:00:00",'
                             f'"source":"s"}}'.encode(), fmt="JSONEachRow", settings={"async_insert": 0})
    plan = "\n".join(r[0] for r in ch_client.query(
        f"EXPLAIN indexes = 1 SELECT count() FROM {db}.mcp_calls_latest(tenant = 'acme', since = '2026-01-01',"
        " until = '2026-02-01')").result_rows)
    # The range and tenant reach the primary key: the view never reads the whole table.
    assert "PrimaryKey" in plan and "tenant in ['acme', 'acme']" in plan and "time in" in plan
    assert "Parts: 1/2" in plan, plan  # the other month's partition is not even opened
