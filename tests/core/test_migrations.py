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
