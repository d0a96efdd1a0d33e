"""The sink's /query endpoint is default-deny: token, loopback Host, JSON only, read-only, no host access,
fixed limits (real chDB behind it); and the CLI still queries a running stack through it."""

from __future__ import annotations

import asyncio
import os
import stat
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path
from typing import Any

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateledger.clickhouse.access import QueryError, StackQuerier
from gateledger.clickhouse.query_token import ensure_query_token, read_query_token
from gateledger.clickhouse.results import QueryRunner
from gateledger.settings import Settings
from sinks.clickhouse.http import build_app, host_allowed

TOKEN = "test-query-token"


@pytest.fixture
def db_client(ch_client: Any, settings: Settings) -> Any:
    """A client whose unqualified table names are this test's database (as the sink's runner)."""
    from gateledger.clickhouse.client import connect

    client = connect(settings.clickhouse, settings.core, database=settings.clickhouse.database)
    yield client
    client.close()


@asynccontextmanager
async def endpoint(db_client: Any, **kw: Any) -> AsyncIterator[TestClient]:
    app = build_app(QueryRunner(db_client), lambda: {"landed": 0}, token=TOKEN, **kw)
    async with TestClient(TestServer(app, host="127.0.0.1")) as http:
        yield http


def auth(**extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {TOKEN}", "Content-Type": "application/json", **extra}


async def post(http: TestClient, sql: str, headers: dict[str, str] | None = None, **body: Any) -> tuple[int, dict]:
    import orjson

    r = await http.post("/query", data=orjson.dumps({"sql": sql, **body}), headers=auth() if headers is None else headers)
    return r.status, await r.json()


def run(coro: Any) -> Any:
    return asyncio.run(coro)


def test_a_reading_query_with_the_token_answers(db_client: Any, settings: Settings) -> None:
    async def main() -> None:
        async with endpoint(db_client) as http:
            status, body = await post(http, "SELECT count() FROM raw_events WHERE tenant = {t:String}",
                                      parameters={"t": "acme"})
            assert status == 200 and body["rows"] == [[0]], body
            status, body = await post(http, "SELECT sum(number) FROM numbers(10)")
            assert status == 200 and body["rows"] == [["45"]] or body["rows"] == [[45]], body
            r = await http.get("/status", headers=auth())
            assert r.status == 200 and (await r.json()) == {"landed": 0}
            assert (await http.get("/healthz")).status == 200  # open: liveness
            metrics = await http.get("/metrics")
            assert metrics.status == 200  # open: counters
            # GateledgerSinkMemoryRunningOut compares the RSS trend with it: never 0 (cgroup or RAM).
            limit = [ln for ln in (await metrics.text()).splitlines()
                     if ln.startswith("gateledger_sink_memory_limit_bytes ")]
            assert limit and float(limit[0].split()[1]) > 64 * 2**20, limit

    run(main())


def test_unauthenticated_and_wrong_tokens_are_refused(db_client: Any) -> None:
    async def main() -> None:
        async with endpoint(db_client) as http:
            for headers in ({"Content-Type": "application/json"},
                            {"Content-Type": "application/json", "Authorization": "Bearer nope"},
                            {"Content-Type": "application/json", "Authorization": f"Basic {TOKEN}"},
                            {"Content-Type": "application/json", "Authorization": "Bearer t\u00e9st\u2603"}):
                status, body = await post(http, "SELECT 1", headers=headers)
                assert (status, body["reason"]) == (401, "unauthenticated"), (headers, body)
            assert (await http.get("/status")).status == 401
        # No token configured at all: nothing is served (default-deny), not everything.
        app = build_app(QueryRunner(db_client), lambda: {}, token="")
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            status, body = await post(http, "SELECT 1", headers=auth())
            assert status == 401

    run(main())


@pytest.mark.parametrize("sql", [
    "DROP TABLE raw_events",
    "DROP TABLE raw_events /*",
    "TRUNCATE TABLE raw_events",
    "ALTER TABLE raw_events DELETE WHERE 1",
    "CREATE TABLE x (a Int8) ENGINE = Memory",
    "RENAME TABLE raw_events TO y",
    "SYSTEM STOP MERGES",
    "KILL QUERY WHERE 1",
    "SET readonly = 0",
    "OPTIMIZE TABLE raw_events FINAL",
])
def test_ddl_and_admin_statements_are_refused_and_change_nothing(db_client: Any, settings: Settings, sql: str) -> None:
    async def main() -> None:
        async with endpoint(db_client) as http:
            status, body = await post(http, sql)
            # 422: ClickHouse could not even parse it with the endpoint's SETTINGS appended
            assert (status, body["reason"]) in ((403, "not_read_only"), (403, "readonly"), (422, "clickhouse")), body
            status, body = await post(http, "SELECT count() FROM system.tables WHERE database = currentDatabase() "
                                            "AND name = 'raw_events'")
            assert body["rows"] == [[1]]

    run(main())


@pytest.mark.parametrize("sql", [
    "INSERT INTO raw_events (id) VALUES ('x')",
    "INSERT INTO raw_events (id) SELECT 'x'",
    "INSERT INTO FUNCTION file('/tmp/gl-x', 'TSV') SELECT 1",
])
def test_writes_are_refused(db_client: Any, sql: str) -> None:
    async def main() -> None:
        async with endpoint(db_client) as http:
            status, body = await post(http, sql)
            assert status == 403, body
            assert (await post(http, "SELECT count() FROM raw_events"))[1]["rows"] == [[0]]

    run(main())


@pytest.mark.parametrize("sql,reason", [
    ("SELECT * FROM file('/etc/hostname', 'LineAsString')", "host_access"),
    ("SELECT file('/etc/hostname')", "host_access"),  # the scalar file() passes readonly: the guard stops it
    ("SELECT FILE('/etc/hostname')", "host_access"),
    ("SELECT * FROM raw_events WHERE id IN (SELECT * FROM url('http://127.0.0.1:9/x', 'LineAsString'))", "host_access"),
    ("SELECT * FROM s3('http://127.0.0.1:9/b/k', 'CSV')", "host_access"),
    ("SELECT * FROM remote('127.0.0.1:9000', system.one)", "host_access"),
    ("SELECT * FROM executable('id', 'TSV', 'x String')", "host_access"),
    ("SELECT * FROM generateRandom('a Int8') LIMIT 1", "table_function"),
    ("SELECT * FROM raw_events JOIN (SELECT * FROM format(JSONEachRow, '{\"a\":1}')) AS f ON 1", "table_function"),
    ("SELECT 1 SETTINGS readonly = 0", "settings"),
    ("SELECT * FROM (SELECT 1 SETTINGS readonly = 0)", "settings"),
    ("SELECT 1 SETTINGS max_execution_time = 100000", "settings"),
])
def test_host_and_network_access_and_setting_changes_are_refused(db_client: Any, sql: str, reason: str) -> None:
    async def main() -> None:
        async with endpoint(db_client) as http:
            status, body = await post(http, sql)
            assert (status, body["reason"]) == (403, reason), body
            assert "rows" not in body

    run(main())


def test_caller_settings_are_refused_and_limits_hold(db_client: Any) -> None:
    async def main() -> None:
        async with endpoint(db_client, query_timeout_s=1.0, query_max_memory_bytes=64 * 1024 * 1024) as http:
            status, body = await post(http, "SELECT 1", settings={"readonly": 0})
            assert (status, body["reason"]) == (403, "settings")
            status, body = await post(http, "SELECT sleep(2)")
            assert status == 422 and "TIMEOUT_EXCEEDED" in body["error"], body
            status, body = await post(http, "SELECT length(groupArray(number)) FROM numbers(50000000)")
            assert status == 422 and "MEMORY_LIMIT_EXCEEDED" in body["error"], body
            status, body = await post(http, "SELECT 1")
            assert status == 200  # the endpoint is fine after refusals

    run(main())


def test_cross_site_posts_are_refused(db_client: Any) -> None:
    """A page can POST text/plain or a form without a preflight; neither is JSON, neither runs."""

    async def main() -> None:
        async with endpoint(db_client) as http:
            for ctype in ("text/plain", "application/x-www-form-urlencoded", "multipart/form-data; boundary=x"):
                r = await http.post("/query", data=b'{"sql": "SELECT 1"}',
                                    headers={"Authorization": f"Bearer {TOKEN}", "Content-Type": ctype,
                                             "Origin": "https://evil.example"})
                assert r.status == 415 and (await r.json())["reason"] == "content_type", ctype
            r = await http.post("/query", data=b'{"sql": "SELECT 1"}', headers={"Content-Type": "text/plain"})
            assert r.status == 401  # and without the token (a page cannot read it) the answer is 401 first

    run(main())


def test_a_foreign_host_header_is_refused(db_client: Any) -> None:
    """DNS rebinding: the attacker's name resolves to 127.0.0.1, but the browser sends that name as Host."""

    async def main() -> None:
        async with endpoint(db_client) as http:
            for host in ("evil.example", "evil.example:8080", "127.0.0.1.nip.io", "localhost.evil.example", ""):
                status, body = await post(http, "SELECT 1", headers=auth(Host=host))
                assert (status, body["reason"]) == (403, "bad_host"), host
            for host in ("127.0.0.1", "localhost:8123", "[::1]:8123", "LOCALHOST"):
                status, _ = await post(http, "SELECT 1", headers=auth(Host=host))
                assert status == 200, host
        async with endpoint(db_client, allowed_hosts=frozenset({"sink.internal"})) as http:
            assert (await post(http, "SELECT 1", headers=auth(Host="sink.internal:80")))[0] == 200

    run(main())
    assert not host_allowed("127.0.0.1@evil.example", frozenset())


def test_token_file_is_private_and_the_cli_querier_uses_it(db_client: Any, tmp_path: Path) -> None:
    data = tmp_path / "data"
    token = ensure_query_token(data)
    mode = stat.S_IMODE(os.stat(data / "query.token").st_mode)
    assert mode == 0o600, oct(mode)
    assert ensure_query_token(data) == token == read_query_token(data)
    os.chmod(data / "query.token", 0o644)
    ensure_query_token(data)
    assert stat.S_IMODE(os.stat(data / "query.token").st_mode) == 0o600

    async def main() -> None:
        app = build_app(QueryRunner(db_client), lambda: {}, token=token)
        async with TestClient(TestServer(app, host="127.0.0.1")) as http:
            url = str(http.make_url("/"))
            result = await StackQuerier(url, data_dir=data).run_async("SELECT {n:UInt8} + 1", {"n": 41})
            assert result.rows == [[42]]
            with pytest.raises(QueryError, match="bearer token"):
                await StackQuerier(url, token="wrong").run_async("SELECT 1")
            with pytest.raises(QueryError, match="host"):
                await StackQuerier(url, data_dir=data).run_async("SELECT * FROM file('/etc/hostname')")

    run(main())
