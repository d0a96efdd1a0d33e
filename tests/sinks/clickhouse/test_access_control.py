"""Server-only access control: the read-only analyst role and per-tenant row policies; and the
Replicated / Distributed layouts of the migrations.

The DDL is rendered and parse-checked everywhere; applying it needs a real ClickHouse server (chDB
has no users, grants, row policies or clusters). Those tests are NOT run on this machine (no server
here): they run only when GATELEDGER_TEST_CLICKHOUSE_URL points at an http(s) server, and are
skipped, with the reason shown, otherwise. One command runs them (docs/operations.md):

    GATELEDGER_TEST_CLICKHOUSE_URL=http://127.0.0.1:8123 .venv/bin/python -m pytest -m clickhouse_server

GATELEDGER_TEST_CLICKHOUSE_USER / _PASSWORD give an admin account (default: default, no password);
GATELEDGER_TEST_CLICKHOUSE_CLUSTER names a cluster of that server (``remote_servers``, ``macros``,
Keeper) for the replicated and sharded layouts. A separate variable from the product's
GATELEDGER_CLICKHOUSE_URL, so a shell set up for a real deployment never points the tests at it.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import clickhouse_connect
import pytest

from gateledger.clickhouse.migrate import migrate
from gateledger.settings import ClickHouseSettings
from sinks.clickhouse.access_control import apply_server_ddl, quote_literal, render_server_ddl, tenant_role

SERVER_URL = os.environ.get("GATELEDGER_TEST_CLICKHOUSE_URL", "")
SERVER_USER = os.environ.get("GATELEDGER_TEST_CLICKHOUSE_USER", "default")
SERVER_PASSWORD = os.environ.get("GATELEDGER_TEST_CLICKHOUSE_PASSWORD", "")
CLUSTER = os.environ.get("GATELEDGER_TEST_CLICKHOUSE_CLUSTER", "")
on_server = pytest.mark.skipif(
    not SERVER_URL.startswith(("http://", "https://")),
    reason="needs a ClickHouse server: set GATELEDGER_TEST_CLICKHOUSE_URL=http(s)://... (chDB has no access control)",
)
on_cluster = pytest.mark.skipif(
    not (SERVER_URL.startswith(("http://", "https://")) and CLUSTER),
    reason="needs a ClickHouse cluster: set GATELEDGER_TEST_CLICKHOUSE_URL and GATELEDGER_TEST_CLICKHOUSE_CLUSTER",
)


def test_ddl_names_and_quotes_tenants_safely() -> None:
    ch = ClickHouseSettings(database="gl", username="sink_svc")
    tenants = ["acme", "o'brien corp", "a`b", "acme-eu", "acme_eu"]
    sql = render_server_ddl(ch, tenants)
    text = "\n".join(sql)
    assert "GRANT  SELECT ON gl.* TO gateledger_reader" in text
    assert "REVOKE  SELECT ON gl.sink_batches FROM gateledger_reader" in text
    assert "USING 1 TO gateledger_analyst, `sink_svc`" in text
    roles = [tenant_role(t) for t in tenants]
    assert len(set(roles)) == len(roles) and all(r.replace("_", "").isalnum() for r in roles)
    assert "USING tenant = 'o\\'brien corp'" in text and quote_literal("a'b") == "'a\\'b'"
    assert sum(s.startswith("CREATE ROW POLICY IF NOT EXISTS `gateledger_tenant_") for s in sql) == len(tenants)
    clustered = "\n".join(render_server_ddl(ClickHouseSettings(database="gl", cluster="prod"), ["acme"]))
    assert "CREATE ROLE IF NOT EXISTS gateledger_reader ON CLUSTER 'prod'" in clustered


def test_analyst_login_only_when_configured_and_password_rotates() -> None:
    ch = ClickHouseSettings(database="gl", username="sink_svc", cluster="prod")
    assert not any("USER" in s for s in render_server_ddl(ch, [], "grafana", ""))
    sql = render_server_ddl(ch, [], "grafana", "s3cr'et")
    logins = [s for s in sql if "`grafana`" in s]
    assert logins[0].startswith("CREATE USER IF NOT EXISTS `grafana` ON CLUSTER 'prod' IDENTIFIED")
    # ALTER after CREATE: a changed password applies to an account that already exists.
    assert any(s.startswith("ALTER USER `grafana` ON CLUSTER 'prod' IDENTIFIED") and "'s3cr\\'et'" in s
               for s in logins)
    assert "GRANT ON CLUSTER 'prod' gateledger_analyst TO `grafana`" in sql
    assert sql[-1].endswith("DEFAULT ROLE gateledger_analyst")


def test_every_server_statement_parses_in_clickhouse(ch_client) -> None:
    # chDB cannot run access control, but its parser is the server's: EXPLAIN AST rejects bad syntax.
    for cluster in ("", "prod"):
        ch = ClickHouseSettings(database="gl", username="sink_svc", cluster=cluster)
        for stmt in render_server_ddl(ch, ["acme", "o'brien corp"], "grafana", "pw'x"):
            ch_client.query(f"EXPLAIN AST {stmt}")


@pytest.fixture
def server() -> Iterator[tuple[object, ClickHouseSettings, str]]:
    """An admin client on the server, a fresh database migrated, cleaned up after."""
    suffix = uuid.uuid4().hex[:8]
    ch = ClickHouseSettings(url=SERVER_URL, database=f"gl_acl_{suffix}", username=SERVER_USER, password=SERVER_PASSWORD)
    admin = clickhouse_connect.get_client(dsn=SERVER_URL, username=SERVER_USER, password=SERVER_PASSWORD)
    migrate(admin, ch)
    yield admin, ch, suffix
    for stmt in (f"DROP USER IF EXISTS alice_{suffix}, bob_{suffix}",
                 f"DROP ROW POLICY IF EXISTS gateledger_unrestricted ON {ch.database}.*",
                 f"DROP ROW POLICY IF EXISTS `{tenant_role('acme')}` ON {ch.database}.*",
                 f"DROP ROW POLICY IF EXISTS `{tenant_role('globex')}` ON {ch.database}.*",
                 f"DROP DATABASE IF EXISTS {ch.database}"):
        admin.command(stmt)
    admin.close()


@on_server
@pytest.mark.clickhouse_server
def test_tenant_analyst_sees_only_their_tenant_and_cannot_write(server) -> None:
    admin, ch, suffix = server
    db = ch.database
    apply_server_ddl(admin, ch, ["acme", "globex"])
    apply_server_ddl(admin, ch, ["acme", "globex"])  # idempotent
    for tenant in ("acme", "globex"):
        admin.raw_insert(f"{db}.mcp_calls", None, (
            f'{{"id":"{tenant}-1","tenant":"{tenant}","time":"2026-11-20 10:00:00","source":"s"}}').encode(),
            fmt="JSONEachRow", settings={"async_insert": 0})
    admin.command(f"CREATE USER alice_{suffix} IDENTIFIED WITH sha256_password BY 'Pw-{suffix}'")
    admin.command(f"GRANT `{tenant_role('acme')}` TO alice_{suffix}")
    admin.command(f"CREATE USER bob_{suffix} IDENTIFIED WITH sha256_password BY 'Pw-{suffix}'")
    admin.command(f"GRANT gateledger_analyst TO bob_{suffix}")
    alice = clickhouse_connect.get_client(dsn=SERVER_URL, username=f"alice_{suffix}", password=f"Pw-{suffix}")
    bob = clickhouse_connect.get_client(dsn=SERVER_URL, username=f"bob_{suffix}", password=f"Pw-{suffix}")
    view = f"{db}.mcp_calls_latest(tenant = '', since = '2026-01-01', until = '2027-01-01')"
    assert alice.query(f"SELECT tenant FROM {db}.mcp_calls").result_rows == [("acme",)]
    assert alice.query(f"SELECT tenant FROM {view}").result_rows == [("acme",)]
    assert sorted(bob.query(f"SELECT tenant FROM {view}").result_rows) == [("acme",), ("globex",)]
    # The sink's own account still sees everything.
    assert len(admin.query(f"SELECT tenant FROM {db}.mcp_calls").result_rows) == 2
    with pytest.raises(Exception, match="(?i)readonly|not enough privileges|ACCESS_DENIED"):
        alice.command(f"INSERT INTO {db}.mcp_calls (id, tenant, time, source) VALUES ('x', 'acme', now(), 's')")
    with pytest.raises(Exception, match="(?i)not enough privileges|ACCESS_DENIED"):
        alice.query(f"SELECT * FROM {db}.sink_batches")
    alice.close()
    bob.close()


@on_cluster
@pytest.mark.clickhouse_server
@pytest.mark.parametrize("sharded", [False, True])
def test_replicated_and_distributed_layouts_apply_on_a_cluster(sharded: bool) -> None:
    """The cluster layouts of docs/operations.md applied for real: Replicated tables ON CLUSTER, and
    with ``sharded`` the ``T_local`` + Distributed ``T`` pairs; a row written lands and reads back."""
    db = f"gl_cl_{uuid.uuid4().hex[:8]}"
    ch = ClickHouseSettings(url=SERVER_URL, database=db, username=SERVER_USER, password=SERVER_PASSWORD,
                            cluster=CLUSTER, sharded=sharded)
    admin = clickhouse_connect.get_client(dsn=SERVER_URL, username=SERVER_USER, password=SERVER_PASSWORD)
    try:
        migrate(admin, ch)
        engines = dict(admin.query("SELECT name, engine FROM system.tables WHERE database = {db:String}",
                                   parameters={"db": db}).result_rows)
        if sharded:
            assert engines["mcp_calls"] == "Distributed" and engines["mcp_calls_local"].startswith("Replicated")
        else:
            assert engines["mcp_calls"].startswith("Replicated") and "mcp_calls_local" not in engines
        admin.raw_insert(f"{db}.mcp_calls", None,
                         b'{"id":"c-1","tenant":"acme","time":"2026-11-20 10:00:00","source":"s"}',
                         fmt="JSONEachRow", settings={"async_insert": 0, "distributed_foreground_insert": 1})
        assert admin.query(f"SELECT id FROM {db}.mcp_calls FINAL").result_rows == [("c-1",)]
    finally:
        admin.command(f"DROP DATABASE IF EXISTS {db} ON CLUSTER '{CLUSTER}' SYNC")
        admin.close()
