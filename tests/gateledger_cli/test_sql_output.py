"""`gateledger sql`: output for people and scripts on awkward values, and parameters bound by ClickHouse
(directly, through the running stack's /query, and from the command line)."""

from __future__ import annotations

import asyncio
import csv
import io
import json
import subprocess
import sys
from decimal import Decimal
from pathlib import Path

import pytest
from aiohttp.test_utils import TestClient, TestServer

from gateledger_cli.params import ParamError, bind_params
from gateledger_cli.render import _width, render
from gateledger.clickhouse.access import ClientQuerier, QueryError, StackQuerier
from gateledger.clickhouse.results import QueryResult
from gateledger.settings import Settings
from sinks.clickhouse.http import build_app

AWKWARD = """
SELECT
    toDecimal128('0.000000000001', 12) AS tiny,
    toDecimal128('12345678901234567890.123456789012', 12) AS huge,
    toDateTime64('2026-11-20 10:15:00.123456', 6, 'UTC') AS t,
    CAST(NULL, 'Nullable(String)') AS nothing,
    '' AS empty,
    ['a', 'b,c', 'd"e'] AS arr,
    map('team', 'platform', 'user', 'u-1') AS scope,
    repeat('x', 5000) AS long_value,
    'line1\\nline2\\ttab \\\\ back' AS control,
    '日本語テキスト' AS wide
"""


@pytest.fixture
def awkward(settings: Settings, ch_client) -> QueryResult:
    q = ClientQuerier(settings)
    try:
        return q.run(AWKWARD)
    finally:
        q.close()


def test_csv_round_trips_exactly_and_tells_null_from_empty(awkward: QueryResult) -> None:
    rows = list(csv.reader(io.StringIO(render(awkward, "csv"))))
    header, row = rows
    got = dict(zip(header, row, strict=True))
    assert got["tiny"] == "0.000000000001" and got["huge"] == "12345678901234567890.123456789012"
    assert got["t"] == "2026-11-20T10:15:00.123456Z"
    assert json.loads(got["arr"]) == ["a", "b,c", 'd"e'] and json.loads(got["scope"]) == {"team": "platform", "user": "u-1"}
    assert got["long_value"] == "x" * 5000 and got["control"] == "line1\nline2\ttab \\ back"
    assert got["wide"] == "日本語テキスト"
    line = render(awkward, "csv").splitlines()[1]
    assert ',,""' in line  # NULL is an empty field, '' is ""
    assert got["nothing"] == got["empty"] == ""


def test_tsv_follows_clickhouse_tabseparated(awkward: QueryResult) -> None:
    header, row = render(awkward, "tsv").rstrip("\n").split("\n")
    got = dict(zip(header.split("\t"), row.split("\t"), strict=True))
    assert got["nothing"] == "\\N" and got["empty"] == ""
    assert got["control"] == "line1\\nline2\\ttab \\\\ back"


def test_jsonl_keeps_types_exact(awkward: QueryResult) -> None:
    (obj,) = [json.loads(line) for line in render(awkward, "jsonl").splitlines()]
    assert Decimal(obj["tiny"]) == Decimal("1e-12") and obj["huge"] == "12345678901234567890.123456789012"
    assert obj["nothing"] is None and obj["empty"] == "" and obj["arr"] == ["a", "b,c", 'd"e']
    assert obj["scope"] == {"team": "platform", "user": "u-1"} and len(obj["long_value"]) == 5000
    assert json.loads(render(awkward, "json"))[0] == obj


def test_table_is_aligned_cut_and_escaped_for_people(awkward: QueryResult) -> None:
    out = render(awkward, "table", max_width=40)
    lines = out.splitlines()
    assert lines[-1] == "1 row"
    assert len({_width(line) for line in lines[:-1]}) == 1, "every line as wide as the others (CJK counted double)"
    assert "NULL" in lines[3] and "…" in lines[3] and "x" * 5000 not in out
    assert "line1\\nline2\\ttab \\\\ back" in out and "\t" not in out
    vertical = render(awkward, "vertical")
    assert "x" * 5000 in vertical and "nothing   : NULL" in vertical


def test_a_wide_result_stays_one_line_per_row(settings: Settings, ch_client) -> None:
    q = ClientQuerier(settings)
    try:
        wide = q.run("SELECT " + ", ".join(f"number * {i} AS c{i}" for i in range(60)) + " FROM numbers(3)")
    finally:
        q.close()
    lines = render(wide, "table").splitlines()
    assert len(lines) == 3 + 3 + 1 + 1 and lines[-1] == "3 rows"
    assert lines[4].rstrip().endswith("│") and "118" in lines[5]


PARAM_SQL = ("SELECT {who:String} AS who, {n:UInt8} + 1 AS n, {ids:Array(String)} AS ids, "
             "{maybe:Nullable(String)} AS maybe, {amount:Decimal(38, 12)} AS amount")
HOSTILE = "o'brien\\'); DROP TABLE x; -- {n:UInt8} ${db}"


def _check_bound(result: QueryResult) -> None:
    assert result.rows[0][0] == HOSTILE  # the text came back as a value, verbatim: nothing was spliced into SQL
    assert result.rows[0][1] == 42 and result.rows[0][2] == ["a", "b'c", "d,e"] and result.rows[0][3] is None
    assert Decimal(str(result.rows[0][4])) == Decimal("0.000000000001")


def test_parameters_are_bound_by_clickhouse_directly_and_through_query_endpoint(settings: Settings, ch_client) -> None:
    params = bind_params(PARAM_SQL, [f"who={HOSTILE}", "n=41", 'ids=["a","b\'c","d,e"]', "maybe=\\N",
                                     "amount=0.000000000001"])
    direct = ClientQuerier(settings)
    try:
        _check_bound(direct.run(PARAM_SQL, params))
        with pytest.raises(QueryError, match="cannot be parsed as UInt8"):
            direct.run(PARAM_SQL, params | {"n": "1; DROP TABLE x"})

        async def through_stack() -> None:
            from gateledger.clickhouse.results import QueryRunner

            app = build_app(QueryRunner(direct._client), lambda: {}, token="t")
            async with TestClient(TestServer(app)) as http:
                querier = StackQuerier(str(http.make_url("/")), token="t")
                result = await querier.run_async(PARAM_SQL, params)
                _check_bound(QueryResult(result.columns, result.types, [
                    [r[0], r[1], r[2], r[3], Decimal(r[4])] for r in result.rows]))
                with pytest.raises(QueryError, match="cannot be parsed as UInt8"):
                    await querier.run_async(PARAM_SQL, params | {"n": "1; DROP TABLE x"})
                bad = await http.post("/query", data=b'{"sql": 1}',
                                      headers={"Authorization": "Bearer t", "Content-Type": "application/json"})
                assert bad.status == 400

        asyncio.run(through_stack())
    finally:
        direct.close()


def test_command_line_parameters_are_typed_by_their_placeholders() -> None:
    assert bind_params("SELECT {m:Map(String, String)}, {t:Tuple(Int8, String)}", ['m={"a":"b"}', 't=[1,"x"]']) == {
        "m": {"a": "b"}, "t": (1, "x")}
    assert bind_params("SELECT {s:String}", ["s=\\N", "other=x"]) == {"s": "\\N", "other": "x"}
    for bad in (["ids=a,b"], ["ids={}"], ["noequals"], ["=x"]):
        with pytest.raises(ParamError):
            bind_params("SELECT {ids:Array(String)}", bad)


def test_gateledger_sql_command_binds_and_prints_csv(tmp_path: Path) -> None:
    env = {"GATELEDGER_DATA_DIR": str(tmp_path / "data"), "PATH": "/usr/bin:/bin"}
    res = subprocess.run(
        [sys.executable, "-m", "gateledger_cli.main", "sql", PARAM_SQL, "-p", f"who={HOSTILE}", "-p", "n=41",
         "-p", 'ids=["a","b\'c","d,e"]', "-p", "maybe=\\N", "-p", "amount=0.000000000001", "--format", "csv"],
        env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    header, row = list(csv.reader(io.StringIO(res.stdout)))
    assert row == [HOSTILE, "42", '["a","b\'c","d,e"]', "", "0.000000000001"]
    res = subprocess.run([sys.executable, "-m", "gateledger_cli.main", "sql", "SELECT {ids:Array(String)}",
                          "-p", "ids=a,b"], env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 2 and "wants JSON" in res.stderr
