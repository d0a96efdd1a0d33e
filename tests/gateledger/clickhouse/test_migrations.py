"""Migrations against the real chDB engine: ordered, idempotent, recorded, and tamper-evident."""

from __future__ import annotations

from pathlib import Path

import pytest

from gateledger.clickhouse.migrate import MigrationError, applied, load_migrations, migrate, render
from gateledger.clickhouse.sqlsplit import split_statements
from gateledger.settings import ClickHouseSettings, Settings


def test_packaged_migrations_apply_once(settings: Settings, ch_client) -> None:
    ch = settings.clickhouse
    assert migrate(ch_client, ch) == []  # the fixture already applied everything
    versions = sorted(applied(ch_client, ch))
    assert versions == [m.version for m in load_migrations()]
    tables = {r[0] for r in ch_client.query(f"SHOW TABLES FROM {ch.database}").result_rows}
    assert {"raw_events", "dead_letters", "mcp_calls", "llm_calls", "interactions", "cost_ledger"} <= tables


def test_custom_directory_changed_file_is_refused(settings: Settings, ch_client, tmp_path: Path) -> None:
    ch = settings.clickhouse.model_copy(update={"database": settings.clickhouse.database + "_x"})
    d = tmp_path / "mig"
    d.mkdir()
    (d / "0001_t.sql").write_text("CREATE TABLE IF NOT EXISTS $db.t (a UInt8) ENGINE = MergeTree ORDER BY a;")
    assert [m.version for m in migrate(ch_client, ch, d)] == [1]
    (d / "0002_u.sql").write_text("-- a comment; with a semicolon\nCREATE TABLE IF NOT EXISTS $db.u (s String) "
                                  "ENGINE = MergeTree ORDER BY s; INSERT INTO $db.u VALUES ('a;b');")
    assert [m.version for m in migrate(ch_client, ch, d)] == [2]
    assert ch_client.query(f"SELECT s FROM {ch.database}.u").result_rows == [("a;b",)]
    (d / "0001_t.sql").write_text("CREATE TABLE IF NOT EXISTS $db.t (a UInt16) ENGINE = MergeTree ORDER BY a;")
    with pytest.raises(MigrationError, match="changed after it was applied"):
        migrate(ch_client, ch, d)
    (d / "0003_bad.sql").write_text("CREATE TABLE $db.broken (")
    (d / "0001_t.sql").write_text("CREATE TABLE IF NOT EXISTS $db.t (a UInt8) ENGINE = MergeTree ORDER BY a;")
    with pytest.raises(MigrationError, match="0003_bad failed"):
        migrate(ch_client, ch, d)
    assert 3 not in applied(ch_client, ch)
    ch_client.command(f"DROP DATABASE {ch.database}")


def test_cluster_rendering() -> None:
    ch = ClickHouseSettings(cluster="prod", database="gl")
    sql = "\n".join(render(load_migrations()[0], ch))
    assert "ON CLUSTER 'prod'" in sql
    assert "ReplicatedReplacingMergeTree('/clickhouse/tables/{shard}/{database}/{table}', '{replica}')" in sql
    single = "\n".join(render(load_migrations()[0], ClickHouseSettings(database="gl")))
    assert "ON CLUSTER" not in single and "ENGINE = ReplacingMergeTree()" in single


def test_split_statements_respects_quotes_and_comments() -> None:
    script = "SELECT 'a;b'; -- c;d\nSELECT \"x;y\" /* e;f */; SELECT 3"
    assert split_statements(script) == ["SELECT 'a;b'", 'SELECT "x;y"', "SELECT 3"]


def _sharded() -> ClickHouseSettings:
    return ClickHouseSettings(cluster="prod", database="gl", sharded=True)


def test_every_layout_parses_in_clickhouse(ch_client) -> None:
    # chDB has no cluster to run ON CLUSTER / Distributed against, but its parser is the server's.
    for ch in (ClickHouseSettings(database="gl"), ClickHouseSettings(cluster="prod", database="gl"), _sharded()):
        for migration in load_migrations():
            for stmt in render(migration, ch):
                ch_client.query(f"EXPLAIN AST {stmt}")


def test_sharded_layout_puts_every_version_of_a_row_on_one_shard() -> None:
    statements = [s for m in load_migrations() for s in render(m, _sharded())]
    text = "\n".join(statements)
    storage = {s.split()[5].split(".")[1] for s in statements
               if s.startswith("CREATE TABLE") and "MergeTree(" in s}
    for table in ("mcp_calls", "llm_calls", "interactions", "cost_ledger", "budget_alerts", "findings",
                  "raw_events", "dead_letters", "policy_decisions", "webhook_decisions"):
        assert f"{table}_local" in storage and table not in storage
        # All versions of an id meet on one shard, so FINAL / ReplacingMergeTree collapse them there.
        assert (f"CREATE TABLE IF NOT EXISTS gl.{table} ON CLUSTER 'prod' AS gl.{table}_local\n"
                f"ENGINE = Distributed('prod', 'gl', '{table}_local', cityHash64(id))") in statements
    for table in ("usage_per_minute", "cost_daily"):
        assert f"ENGINE = Distributed('prod', 'gl', '{table}_local', cityHash64(tenant))" in text
    # The sink's bookkeeping: one replica on every node, not sharded.
    for table in ("sink_batches", "rollup_prior"):
        assert table in storage
        stmt = next(s for s in statements if s.startswith(f"CREATE TABLE IF NOT EXISTS gl.{table} "))
        assert "ReplicatedMergeTree('/clickhouse/tables/all/{database}/{table}', '{replica}')" in stmt
    # Column changes reach both the shards' tables and the Distributed table in front of them.
    alters = [s for s in statements if s.startswith("ALTER TABLE gl.findings")]
    assert [a.split()[2] for a in alters] == ["gl.findings_local", "gl.findings"]
    # Views and materialized views read and write the Distributed names.
    assert "FROM gl.mcp_calls_local" not in text and "TO gl.usage_per_minute AS" in text
    # Single-shard clusters keep the plain layout.
    plain = [s for m in load_migrations() for s in render(m, ClickHouseSettings(cluster="prod", database="gl"))]
    assert not any("Distributed" in s or "_local" in s for s in plain)


def test_sharded_sessions_insert_synchronously() -> None:
    from gateledger.clickhouse.client import session_settings
    from sinks.clickhouse.rebuild import truncate_statement

    assert session_settings(_sharded()) == {"distributed_foreground_insert": 1}
    assert session_settings(ClickHouseSettings(cluster="prod")) == {}
    assert truncate_statement("gl", "cost_daily", _sharded()) == \
        "TRUNCATE TABLE `gl`.`cost_daily_local` ON CLUSTER 'prod'"
