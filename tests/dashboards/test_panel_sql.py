"""Every panel's SQL, every variable's option query and every Grafana alert rule's query, with the
plugin's macros and Grafana's variables expanded, runs against the real schema (migrations) in chDB
and returns rows on simulated data; duplicates and superseded versions change no result; the key
numbers equal answers computed independently in Python."""

from __future__ import annotations

import math
from collections import Counter
from datetime import timedelta
from decimal import Decimal

import pytest

from dashboards import grafana_sql, sql
from dashboards.grafana_sql import ALL, Variable
from gateledger.tables import VERSIONS, Table
from tests.dashboards import landing, simdata
from tests.dashboards.conftest import SimDb
from tests.dashboards.queries import (
    Query,
    alert_queries,
    dashboard_queries,
    normalized,
    panel_sql,
    run,
    time_range,
)

QUERIES = dashboard_queries()
SERVERS = list(simdata.SERVERS)
MODELS = list(simdata.MODELS)
# acme's own unpriced model (the world gives it one the catalog does not price)
ACME_UNPRICED = simdata.models_of(simdata.WORLD[0])[1].name


def variables(sim: simdata.SimData, **selected: object) -> dict[str, Variable]:
    """Dashboard variables: All unless selected; the drill-down on an interaction with LLM and tool calls."""
    interaction = next(i for i in sim.rows["interactions"] if i.llm_calls and i.tool_calls).id  # type: ignore[attr-defined]
    options = {"tenant": list(simdata.TENANTS), "server": SERVERS, "model": MODELS}
    out = {name: Variable(selected.get(name, ALL), options=opts) for name, opts in options.items()}  # type: ignore[arg-type]
    out["interaction"] = Variable(str(selected.get("interaction", interaction)), multi=False)
    return out


SELECTIONS = {
    "all": {},
    "one tenant": {"tenant": ["acme"]},
    "two tenants, servers and models": {
        "tenant": ["acme", "globex"],
        "server": ["acme-github", "globex-jira"],
        "model": ["gpt-4o", ACME_UNPRICED],
    },
}


def test_the_dashboards_have_queries_to_test() -> None:
    per_dashboard = Counter(q.dashboard for q in QUERIES)
    assert set(per_dashboard) == {"gateledger-sre", "gateledger-cost", "gateledger-compliance"}
    assert all(n >= 10 for n in per_dashboard.values()), per_dashboard


@pytest.mark.parametrize("selection", list(SELECTIONS))
def test_every_query_returns_rows(sim_db: SimDb, selection: str) -> None:
    tr = time_range(sim_db.now)
    vars_ = variables(sim_db.sim, **SELECTIONS[selection])
    empty, failed = [], []
    for q in QUERIES:
        try:
            _, rows = run(sim_db.client, q.sql, tr, vars_)
        except Exception as exc:  # report every failing query at once
            failed.append(f"{q.name}: {exc}")
            continue
        if not rows:
            empty.append(q.name)
    assert not failed, "\n".join(failed)
    assert not empty, f"no rows for {selection}: {empty}"


def test_variable_selections_filter_the_panels(sim_db: SimDb) -> None:
    tr = time_range(sim_db.now)
    vars_ = variables(sim_db.sim, tenant=["acme", "initech"], model=["gpt-4o"], server=["initech-jira"])
    cols, rows = run(sim_db.client, panel_sql("gateledger-cost", "Spend by tenant"), tr, vars_)
    assert {r[cols.index("tenant")] for r in rows} == {"acme", "initech"}
    cols, rows = run(sim_db.client, panel_sql("gateledger-cost", "Spend by model"), tr, vars_)
    assert {r[cols.index("model")] for r in rows} == {"gpt-4o"}
    cols, rows = run(sim_db.client, panel_sql("gateledger-sre", "MCP error rate by server"), tr, vars_)
    assert {r[cols.index("server")] for r in rows} == {"initech-jira"}
    # A tenant with a quote in its name is escaped, not injected.
    _, rows = run(
        sim_db.client,
        panel_sql("gateledger-sre", "Events landed"),
        tr,
        variables(sim_db.sim, tenant=["o'brien"]),
    )
    assert rows == [(0,)]


def test_the_time_range_bounds_every_panel(sim_db: SimDb) -> None:
    # A range before any simulated event: counts are zero, series and tables are empty.
    tr = grafana_sql.TimeRange(sim_db.now - timedelta(days=3), sim_db.now - timedelta(days=2), 60)
    vars_ = variables(sim_db.sim)
    for title in ("Events/s by source and type", "MCP call latency by server and tool"):
        assert run(sim_db.client, panel_sql("gateledger-sre", title), tr, vars_)[1] == []
    assert run(sim_db.client, panel_sql("gateledger-sre", "Events landed"), tr, vars_)[1] == [(0,)]


def test_key_numbers_are_exact(sim_db: SimDb) -> None:
    exp = sim_db.sim.expected
    tr = time_range(sim_db.now)
    vars_ = variables(sim_db.sim)

    def one(uid: str, title: str) -> object:
        _, rows = run(sim_db.client, panel_sql(uid, title), tr, vars_)
        assert len(rows) == 1, (title, rows)
        return rows[0][0]

    assert one("gateledger-sre", "Events landed") == exp.raw_events
    assert one("gateledger-sre", "Dead letters") == exp.dead_letters
    assert one("gateledger-cost", "Total spend") == exp.total_cost  # Decimal, to the last digit
    assert one("gateledger-cost", "Unpriced calls") == exp.unpriced_calls
    assert one("gateledger-compliance", "Blocked pre-checks") == exp.blocked_prechecks
    assert one("gateledger-compliance", "Webhook rejections") == exp.webhook_rejections
    assert one("gateledger-compliance", "Authorization denials") == exp.denials
    assert one("gateledger-compliance", "Unaudited LLM calls") == exp.findings["unaudited_llm_call"]
    assert one("gateledger-compliance", "Orphan audits") == exp.findings["orphan_audit"]
    assert one("gateledger-compliance", "Policy bypasses") == exp.findings["policy_bypass"]

    cols, rows = run(sim_db.client, panel_sql("gateledger-cost", "Spend by tenant"), tr, vars_)
    by_tenant: dict[str, Decimal] = {}
    for r in rows:
        by_tenant[r[cols.index("tenant")]] = (
            by_tenant.get(r[cols.index("tenant")], Decimal(0)) + r[cols.index("spend_usd")]
        )
    assert by_tenant == exp.cost_by_tenant

    _, rows = run(sim_db.client, panel_sql("gateledger-compliance", "Interactions"), tr, vars_)
    assert len(rows) == len(sim_db.sim.interaction_ids), "one row per interaction, whatever its versions"


@pytest.mark.parametrize("by_id", [False, True], ids=["versions from the table", "versions by id"])
@pytest.mark.parametrize("limit", [1, 7, 40, 100_000])
def test_a_list_page_read_by_key_is_the_page_of_the_newest_versions(sim_db: SimDb, limit: int, by_id: bool) -> None:
    """latest_page (the interactions list, issue 22) keeps what ORDER BY ... LIMIT over latest() keeps,
    for pages smaller than the data (the fast way, from the newest rows only, must be sure of them) and
    larger (every id's newest version), with superseded versions, duplicates and withdrawn ones present;
    by_id: the candidates' versions read from interaction_versions (migration 0176), as the list does."""
    cols = "time, tenant, status, llm_calls, models, cost_usd"
    last = "status = 'ok'"
    order = sql.page_order(last, "id")  # a total order: both sides pick the same ties
    whole = f"SELECT id, {cols} FROM {sql.latest(Table.INTERACTIONS, cols, sql.TIME, sql.TENANT)}"
    page = {"last": last, "sort_columns": "status", "tie": "id", "versions": VERSIONS[Table.INTERACTIONS] if by_id else ""}
    paged = f"SELECT id, {cols} FROM {sql.latest_page(Table.INTERACTIONS, cols, limit, sql.TIME, sql.TENANT, **page)}"
    tr, vars_ = time_range(sim_db.now), variables(sim_db.sim, tenant=["acme"])
    everything = run(sim_db.client, whole, tr, vars_)[1]
    want = run(sim_db.client, f"{whole} ORDER BY {order} LIMIT {limit}", tr, vars_)[1]
    assert len(want) == min(limit, len(everything)) and {r[3] for r in everything} - {"ok"}
    assert run(sim_db.client, f"{paged} ORDER BY {order} LIMIT {limit}", tr, vars_)[1] == want
    fast, sure = sql.newest_page(Table.INTERACTIONS, limit, sql.TIME, sql.TENANT, **page)
    (sure_of,), = run(sim_db.client, sure, tr, vars_)[1]
    # Small pages are answered the fast way alone (the simulator has a few dozen non-ok interactions per
    # tenant); whenever it is sure, its keys are the page's, in order.
    assert (sure_of >= limit) == (limit <= 7)
    if sure_of >= limit:
        keys = run(sim_db.client, f"SELECT id FROM ({fast})", tr, vars_)[1]
        assert [k[0] for k in keys] == [r[0] for r in want]


# Rows planted so that the newest rows mislead: (id, version, minutes after the start, status, retracted).
MISLEADING_NEWEST = [
    ("a", 1, 60, "error", False), ("a", 2, 60, "ok", False),  # the newest non-ok row, superseded by ok
    ("b", 1, 59, "blocked", False), ("b", 2, 59, "blocked", True),  # withdrawn
    ("c", 1, 58, "error", False), ("c", 2, 3, "error", False),  # its time moved back
    ("d", 1, 57, "error", False), ("d", 1, 57, "error", False),  # delivered twice
    *[(f"e{m}", 1, m, "error", False) for m in range(10, 50, 4)],
    *[(f"f{m}", 1, m, "ok", False) for m in range(11, 61, 5)],
]


@pytest.mark.parametrize("by_id", [False, True], ids=["versions from the table", "versions by id"])
@pytest.mark.parametrize(("limit", "fast"), [(1, False), (6, True), (12, True)])
def test_a_page_is_never_sure_of_superseded_withdrawn_or_moved_rows(sim_db: SimDb, limit: int, fast: bool,
                                                                   by_id: bool) -> None:
    """The newest rows of the window are superseded (a), withdrawn (b), moved out of it (c) or doubled (d):
    a page of 1 looks at a and b only and so takes the slow way; pages of 6 and 12 are sure without them.
    by_id: the candidates' versions come from the table of every version by id (interaction_versions,
    migration 0176), as the interactions list reads them."""
    # A copy of the interactions table, in a database of its own so that it keeps the table's name.
    scratch = f"{sim_db.database}_page_{limit}_{int(by_id)}"
    table = f"{scratch}.{Table.INTERACTIONS}"
    versions = f"{scratch}.{VERSIONS[Table.INTERACTIONS]}"
    sim_db.admin.command(f"CREATE DATABASE {scratch}")
    sim_db.admin.command(f"CREATE TABLE {table} AS {sim_db.database}.{Table.INTERACTIONS}")
    sim_db.admin.command(f"CREATE TABLE {versions} AS {sim_db.database}.{VERSIONS[Table.INTERACTIONS]}")
    try:
        start = sim_db.now - timedelta(hours=2)
        rows = [["acme", start + timedelta(minutes=m), i, v, st, r] for i, v, m, st, r in MISLEADING_NEWEST]
        columns = ["tenant", "time", "id", "version", "status", "retracted"]
        sim_db.admin.insert(table, rows, column_names=columns)
        sim_db.admin.insert(versions, rows, column_names=columns)
        page = {"last": "status = 'ok'", "sort_columns": "status", "tie": "id", "versions": versions if by_id else ""}
        order = sql.page_order("status = 'ok'", "id")
        tr, vars_ = time_range(sim_db.now), variables(sim_db.sim)
        want = run(sim_db.client, f"SELECT id FROM {sql.latest(table, 'time, status', sql.TIME)} "
                   f"ORDER BY {order} LIMIT {limit}", tr, vars_)[1]
        got = run(sim_db.client, f"SELECT id FROM {sql.latest_page(table, 'time, status', limit, sql.TIME, **page)} "
                  f"ORDER BY {order} LIMIT {limit}", tr, vars_)[1]
        assert got == want and len(want) == limit
        keys, sure = sql.newest_page(table, limit, sql.TIME, **page)
        (sure_of,), = run(sim_db.client, sure, tr, vars_)[1]
        assert (sure_of >= limit) == fast
        if fast:
            assert run(sim_db.client, f"SELECT id FROM ({keys})", tr, vars_)[1] == want
    finally:
        sim_db.admin.command(f"DROP DATABASE {scratch}")


def test_interaction_drill_down_shows_exactly_that_interactions_records(sim_db: SimDb) -> None:
    sim = sim_db.sim
    inter = next(i for i in sim.rows["interactions"] if i.llm_calls and i.tool_calls and i.version == 1)  # type: ignore[attr-defined]
    events = set(inter.event_ids)  # type: ignore[attr-defined]
    want = Counter()
    for table, record in (
        ("policy_decisions", "policy decision"),
        ("llm_calls", "llm call"),
        ("mcp_calls", "mcp call"),
        ("webhook_decisions", "webhook decision"),
    ):
        want[record] = len({m.id for m in sim.rows[table] if events & set(m.event_ids)})  # type: ignore[attr-defined]
    want["cost"] = len({m.id for m in sim.rows["cost_ledger"] if m.interaction_id == inter.id})  # type: ignore[attr-defined]
    want["finding"] = len({m.id for m in sim.rows["findings"] if m.interaction_id == inter.id})  # type: ignore[attr-defined]
    want = +want  # drop zero counts

    cols, rows = run(
        sim_db.client,
        panel_sql("gateledger-compliance", "Everything recorded for interaction $interaction"),
        time_range(sim_db.now),
        variables(sim, interaction=inter.id),
    )  # type: ignore[attr-defined]
    assert Counter(r[cols.index("record")] for r in rows) == want
    # An unknown id shows nothing (empty correlation keys match nothing).
    _, rows = run(
        sim_db.client,
        panel_sql("gateledger-compliance", "Everything recorded for interaction $interaction"),
        time_range(sim_db.now),
        variables(sim, interaction="no-such-interaction"),
    )
    assert rows == []


def test_grafana_alert_rule_queries_find_the_budgets_that_fired(sim_db: SimDb) -> None:
    # Grafana evaluates the rules over their relative range: the last 15 minutes.
    tr = grafana_sql.TimeRange(sim_db.now - timedelta(minutes=15), sim_db.now, 60)
    (limit, projected, axonflow_warning) = alert_queries()
    cols, rows = run(sim_db.client, limit.sql, tr, {})
    assert {r[cols.index("budget_id")] for r in rows} == {f"budget-{t}-daily" for t in simdata.TENANTS}
    assert all(r[cols.index("utilization")] == 1.0 for r in rows)
    assert all(isinstance(r[cols.index("late")], str) for r in rows), "string columns become alert labels"
    cols, rows = run(sim_db.client, projected.sql, tr, {})
    assert len(rows) == 3 and all(
        r[cols.index("projected_utilization")] == pytest.approx(31.2 / 25) for r in rows
    )
    # Outside the window nothing fires.
    old = grafana_sql.TimeRange(sim_db.now - timedelta(hours=5), sim_db.now - timedelta(hours=4), 60)
    assert run(sim_db.client, limit.sql, old, {})[1] == []
    # The simulated AxonFlow never warned (tests/test_axonflow_governance.py covers a warning).
    assert run(sim_db.client, axonflow_warning.sql, tr, {})[1] == []


def test_duplicates_and_superseded_versions_change_no_result(sim_db: SimDb) -> None:
    """Re-delivered rows (a sink retry, a replay) sit next to the originals until a merge; every panel
    must give the same answer with them as without them."""
    tr = time_range(sim_db.now)
    vars_ = variables(sim_db.sim)
    everything: list[Query] = [*QUERIES, *alert_queries()]
    before = {q.name: normalized(run(sim_db.client, q.sql, tr, vars_)[1]) for q in everything}

    # Through the sink's rollup path: a rollup that counted a re-delivered row would change a panel.
    landing.land(sim_db.admin, sim_db.database, sim_db.sim, duplicates=True)
    doubled = []
    for table in sim_db.sim.duplicates:
        key = "id" if table == "raw_events" else "id, version"
        total, distinct = sim_db.client.query(f"SELECT count(), uniqExact({key}) FROM {table}").result_rows[0]
        if total > distinct:
            doubled.append(table)
    assert set(doubled) == set(sim_db.sim.duplicates), "the duplicates must be visible (merges are stopped)"
    # Superseded versions are there too (interactions and restated costs have version 1 and 2).
    for table in ("interactions", "cost_ledger"):
        assert sim_db.client.query(f"SELECT count() > uniqExact(id) FROM {table}").result_rows[0][0]

    after = {q.name: normalized(run(sim_db.client, q.sql, tr, vars_)[1]) for q in everything}
    changed = [name for name in before if before[name] != after[name]]
    assert not changed, f"results changed by duplicates: {changed}"


# What the rollup panels answered from base rows before the rollups (issue 22): they must still agree.
_RAW = "(SELECT id, {cols} FROM {table} WHERE $__timeFilter(time) ORDER BY {order} LIMIT 1 BY id)"
_RAW_EVENTS = _RAW.format(cols="time, source, type, inserted_at", table="raw_events", order="inserted_at")
_LEDGER = _RAW.format(
    cols="time, tenant, kind, user_id, team, mcp_server_id, provider, model, total_cost_usd, unpriced, event_id",
    table="cost_ledger",
    order="version DESC",
)
_DELAY_BY_TABLE = " UNION ALL ".join(
    f"SELECT $__timeInterval(time) AS t, '{t}' AS output_table, dateDiff('millisecond', time, inserted_at) AS d "
    f"FROM {_RAW.format(cols='time, inserted_at', table=t, order='inserted_at')}"
    for t in ("mcp_calls", "llm_calls", "policy_decisions", "webhook_decisions", "cost_ledger")
)
_MCP = _RAW.format(cols="time, mcp_server_id, tool_name, status, error, duration_ms", table="mcp_calls", order="version DESC")
_LLM = _RAW.format(cols="time, provider, model, status, latency_ms, output_tokens", table="llm_calls", order="version DESC")
_FAILED = "status IN ('failure', 'timeout')"
_POLICY = _RAW.format(cols="time, user_id, approved, policies, block_reason", table="policy_decisions", order="version DESC")
_WEBHOOK = _RAW.format(cols="time, filter_name, mcp_server_id, tool_name, decision", table="webhook_decisions", order="version DESC")
_BLOCKING = "arrayJoin(if(empty(policies), [if(block_reason = '', '(unspecified)', block_reason)], policies))"
BASE_TABLE_ANSWERS = {
    ("gateledger-sre", "Events landed"): f"SELECT uniqExact(id) FROM {_RAW_EVENTS}",
    ("gateledger-sre", "Events/s by source and type"): "SELECT $__timeInterval(time) AS t, source, type,"
    f" uniqExact(id) / $__interval_s FROM {_RAW_EVENTS} GROUP BY t, source, type",
    ("gateledger-sre", "End-to-end delay: event time → landed (raw events)"): "SELECT $__timeInterval(time) AS t,"
    " quantile(0.5)(dateDiff('millisecond', time, inserted_at)), quantile(0.95)(dateDiff('millisecond', time, inserted_at)),"
    f" quantile(0.99)(dateDiff('millisecond', time, inserted_at)) FROM {_RAW_EVENTS} GROUP BY t",
    ("gateledger-sre", "End-to-end delay p95 by output table"): "SELECT t, output_table, quantile(0.95)(d)"
    f" FROM ({_DELAY_BY_TABLE}) GROUP BY t, output_table",
    ("gateledger-sre", "MCP error rate"): f"SELECT countIf({_FAILED}) / greatest(count(), 1) FROM {_MCP}",
    ("gateledger-sre", "LLM error rate by provider"): "SELECT $__timeInterval(time) AS t, provider,"
    f" countIf(status = 'error') / count() FROM {_LLM} GROUP BY t, provider",
    ("gateledger-sre", "Top failing tools"): f"SELECT mcp_server_id, tool_name, count() AS calls, countIf({_FAILED}) AS failures,"
    f" failures / calls AS error_rate, countIf(status = 'denied'), argMaxIf(error, time, {_FAILED}), maxIf(time, {_FAILED})"
    f" FROM {_MCP} GROUP BY mcp_server_id, tool_name HAVING failures > 0 ORDER BY failures DESC, error_rate DESC LIMIT 20",
    ("gateledger-sre", "MCP call latency p50 / p95 / p99 by server"): "SELECT $__timeInterval(time) AS t, mcp_server_id,"
    " quantile(0.5)(duration_ms), quantile(0.95)(duration_ms), quantile(0.99)(duration_ms)"
    f" FROM {_MCP} WHERE duration_ms IS NOT NULL GROUP BY t, mcp_server_id",
    ("gateledger-sre", "LLM latency by provider and model"): "SELECT provider, model, count(), quantile(0.5)(latency_ms),"
    " quantile(0.95)(latency_ms) AS p95, quantile(0.99)(latency_ms),"
    " sum(output_tokens) / greatest(sum(latency_ms) / 1000, 0.001)"
    f" FROM {_LLM} WHERE latency_ms IS NOT NULL GROUP BY provider, model ORDER BY p95 DESC",
    ("gateledger-compliance", "Authorization denials by server"): "SELECT $__timeInterval(time) AS t, mcp_server_id,"
    f" count() FROM {_MCP} WHERE status = 'denied' GROUP BY t, mcp_server_id",
    ("gateledger-compliance", "Blocked pre-checks"): f"SELECT countIf(NOT approved) FROM {_POLICY}",
    ("gateledger-compliance", "Blocked pre-checks by policy"): f"SELECT $__timeInterval(time) AS t, {_BLOCKING} AS policy,"
    f" count() FROM {_POLICY} WHERE NOT approved GROUP BY t, policy",
    ("gateledger-compliance", "Blocked pre-checks by policy and reason"): f"SELECT {_BLOCKING} AS policy, block_reason,"
    f" count(), uniqExact(user_id), max(time) FROM {_POLICY} WHERE NOT approved GROUP BY policy, block_reason",
    ("gateledger-compliance", "Webhook rejections by filter"): "SELECT $__timeInterval(time) AS t,"
    f" if(filter_name = '', '(unnamed)', filter_name) AS filter, count() FROM {_WEBHOOK} WHERE decision = 'rejected'"
    " GROUP BY t, filter",
    ("gateledger-compliance", "Denials and rejections by tool"): "SELECT server, tool, sum(denied), sum(rejected), max(last)"
    f" FROM (SELECT mcp_server_id AS server, tool_name AS tool, count() AS denied, 0 AS rejected, max(time) AS last FROM {_MCP}"
    " WHERE status = 'denied' GROUP BY server, tool UNION ALL SELECT mcp_server_id, tool_name, 0, count(), max(time)"
    f" FROM {_WEBHOOK} WHERE decision = 'rejected' GROUP BY mcp_server_id, tool_name) GROUP BY server, tool",
    ("gateledger-cost", "Unpriced usage"): "SELECT kind, provider, model, mcp_server_id, tool_name, count(),"
    " sum(input_tokens), sum(output_tokens), max(time), argMax(interaction_id, time)"
    f" FROM {_RAW.format(cols='time, kind, provider, model, mcp_server_id, tool_name, input_tokens, output_tokens, unpriced, interaction_id', table='cost_ledger', order='version DESC')}"
    " WHERE unpriced GROUP BY kind, provider, model, mcp_server_id, tool_name",
    ("gateledger-compliance", "Findings by kind"): "SELECT $__timeInterval(time) AS t, kind, count()"
    f" FROM {_RAW.format(cols='time, kind', table='findings', order='version DESC')} GROUP BY t, kind",
    ("gateledger-sre", "variable server"): "SELECT mcp_server_id, if(argMax(mcp_server_name, time) = '', mcp_server_id,"
    " argMax(mcp_server_name, time)) FROM mcp_calls WHERE $__timeFilter(time) AND mcp_server_id != '' GROUP BY mcp_server_id",
    ("gateledger-sre", "variable model"): "SELECT DISTINCT model FROM llm_calls WHERE $__timeFilter(time) AND model != ''",
    ("gateledger-compliance", "Interactions"): "SELECT time, id, tenant, user_id, client_id, status, approved, block_reason,"
    " arrayStringConcat(policies, ', '), llm_calls, tool_calls, webhook_rejections, errors, cost_usd, latency_ms,"
    " arrayStringConcat(models, ', '), arrayStringConcat(mcp_servers, ', '), close_reason FROM"
    f" {_RAW.format(cols='time, tenant, user_id, client_id, status, approved, block_reason, policies, llm_calls, tool_calls, webhook_rejections, errors, cost_usd, latency_ms, models, mcp_servers, close_reason', table='interactions', order='version DESC')}"
    " ORDER BY status = 'ok', time DESC LIMIT 1000",
    ("gateledger-compliance", "Findings"): "SELECT time, kind, severity, user_id, client_id, description, interaction_id,"
    f" detected_at FROM {_RAW.format(cols='time, kind, severity, user_id, client_id, description, interaction_id, detected_at', table='findings', order='version DESC')}"
    " ORDER BY multiIf(severity = 'critical', 0, severity = 'high', 1, severity = 'medium', 2, 3), time DESC LIMIT 500",
    ("gateledger-cost", "Total spend"): f"SELECT sum(total_cost_usd) FROM {_LEDGER}",
    ("gateledger-cost", "LLM spend"): f"SELECT sumIf(total_cost_usd, kind = 'llm') FROM {_LEDGER}",
    ("gateledger-cost", "MCP tool spend"): f"SELECT sumIf(total_cost_usd, kind = 'tool') FROM {_LEDGER}",
    ("gateledger-cost", "Spend by tenant"): "SELECT $__timeInterval(time) AS t, tenant, sum(total_cost_usd)"
    f" FROM {_LEDGER} GROUP BY t, tenant",
    ("gateledger-cost", "Spend by MCP server"): "SELECT $__timeInterval(time) AS t, mcp_server_id, sum(total_cost_usd)"
    f" FROM {_LEDGER} WHERE mcp_server_id != '' GROUP BY t, mcp_server_id",
    ("gateledger-cost", "Burn rate by tenant (USD/h)"): "SELECT $__timeInterval(time) AS t, tenant,"
    f" sum(total_cost_usd) * 3600 / $__interval_s FROM {_LEDGER} GROUP BY t, tenant",
    ("gateledger-sre", "MCP call latency by server and tool"): "SELECT mcp_server_id, tool_name, count() AS calls,"
    " quantile(0.5)(duration_ms), quantile(0.95)(duration_ms) AS p95, quantile(0.99)(duration_ms)"
    f" FROM {_MCP} WHERE duration_ms IS NOT NULL GROUP BY mcp_server_id, tool_name ORDER BY p95 DESC LIMIT 50",
    ("gateledger-cost", "Unpriced calls"): f"SELECT countIf(unpriced) FROM {_LEDGER}",
    ("gateledger-cost", "Spend by model"): "SELECT $__timeInterval(time) AS t, provider, model, sum(total_cost_usd)"
    f" FROM {_LEDGER} WHERE kind = 'llm' GROUP BY t, provider, model",
    ("gateledger-cost", "Spend by user (top 10)"): "SELECT $__timeInterval(time) AS t, user_id, sum(total_cost_usd)"
    f" FROM {_LEDGER} WHERE user_id IN (SELECT user_id FROM {_LEDGER} WHERE user_id != '' GROUP BY user_id"
    " ORDER BY sum(total_cost_usd) DESC LIMIT 10) GROUP BY t, user_id",
    ("gateledger-cost", "Top spenders"): "SELECT user_id, tenant, argMax(team, time), uniqExact(event_id) AS calls,"
    " sum(total_cost_usd) AS spend_usd, toFloat64(spend_usd) / toFloat64(sum(spend_usd) OVER ())"
    f" FROM {_LEDGER} WHERE user_id != '' GROUP BY user_id, tenant ORDER BY spend_usd DESC LIMIT 25",
}


@pytest.mark.parametrize(("cut", "interval_s"), [((0, 0), 60), ((17, 43), 60), ((17, 43), 3600)],
                         ids=["whole minutes", "cut mid-minute", "hourly interval"])
def test_rollup_panels_answer_what_the_base_tables_do(sim_db: SimDb, cut: tuple[int, int], interval_s: int) -> None:
    """At an hourly interval the whole hours of the range come from the hourly rollups (issue 22): the
    two-hour range holds at least one whole hour, minutes around it and partial minutes at its edges."""
    from sinks.clickhouse.rebuild import rebuild_rollups

    # The rebuild lands each event at its first copy's inserted_at, as the base-table queries measure
    # delay; the sink's own feed (used by the fixture) lands it when the feed is written, a moment later.
    rebuild_rollups(sim_db.admin, sim_db.database)
    start = sim_db.now.replace(second=0) - timedelta(hours=2) + timedelta(seconds=cut[0])
    tr = grafana_sql.TimeRange(start, sim_db.now.replace(second=0) - timedelta(seconds=cut[1]), interval_s)
    vars_ = variables(sim_db.sim)
    for (uid, title), base in BASE_TABLE_ANSWERS.items():
        want = normalized(run(sim_db.client, base, tr, vars_)[1])
        got = normalized(run(sim_db.client, panel_sql(uid, title), tr, vars_)[1])
        assert want, title
        if title in QUANTILE_PANELS:
            # The delay sketch (quantilesBFloat16) against the base rows' delays: the same rows and keys;
            # each quantile is one of its bucket's delays, truncated to 8 significant bits, at the
            # interpolated quantile's rank give or take one (quantile() interpolates, the sketch does not).
            levels, values_sql = QUANTILE_PANELS[title]
            values = {_keys(r): r[-1] for r in normalized(run(sim_db.client, values_sql, tr, vars_)[1])}
            assert len(got) == len(want) and sorted(map(_keys, got)) == sorted(map(_keys, want)), title
            for g in got:
                delays = values[_keys(g)]
                for level, q in zip(levels, [x for x in g if isinstance(x, float)], strict=True):
                    p = level * (len(delays) - 1)
                    low, high = delays[max(0, math.floor(p) - 1)], delays[min(len(delays) - 1, math.ceil(p) + 1)]
                    assert low * (1 - 2**-7) <= q <= high, (title, g, level, delays)
        else:
            assert got == want, title


# The delay panels, their quantile levels, and each bucket's delays from the base rows (sorted).
QUANTILE_PANELS = {
    "End-to-end delay: event time → landed (raw events)": (
        (0.5, 0.95, 0.99),
        "SELECT $__timeInterval(time) AS t, arraySort(groupArray(toFloat64(dateDiff('millisecond', time, inserted_at))))"
        f" FROM {_RAW_EVENTS} GROUP BY t"),
    "End-to-end delay p95 by output table": (
        (0.95,), f"SELECT t, output_table, arraySort(groupArray(toFloat64(d))) FROM ({_DELAY_BY_TABLE}) GROUP BY t, output_table"),
}


def _keys(row: tuple) -> tuple:
    return tuple(x for x in row if not isinstance(x, float | tuple | list))


def test_a_restatement_fed_like_the_sink_moves_spend_by_exactly_the_difference(sim_db: SimDb) -> None:
    tr, vars_ = time_range(sim_db.now), variables(sim_db.sim)
    total, users = panel_sql("gateledger-cost", "Total spend"), panel_sql("gateledger-cost", "Top spenders")
    before = run(sim_db.client, total, tr, vars_)[1][0][0]

    def spend_by_user() -> Decimal:  # ranked from the hourly per-user rollup for whole hours (issue 22)
        cols, rows = run(sim_db.client, users, tr, vars_)
        return sum((r[cols.index("spend_usd")] for r in rows), Decimal(0))

    by_user = spend_by_user()
    # An entry of a user, in an hour lying wholly inside the range: it moves the hourly rollup.
    entry = max((c for c in sim_db.sim.rows["cost_ledger"] if c.user_id  # type: ignore[attr-defined]
                 and c.time.replace(minute=0, second=0, microsecond=0) >= tr.start  # type: ignore[attr-defined]
                 and c.time.replace(minute=0, second=0, microsecond=0) + timedelta(hours=1) <= tr.end),  # type: ignore[attr-defined]
                key=lambda c: c.version)  # type: ignore[attr-defined]
    restated = entry.model_copy(update={"version": entry.version + 1, "total_cost_usd": entry.total_cost_usd + Decimal("1.000000000001")})  # type: ignore[attr-defined]
    sim = simdata.SimData(rows={"cost_ledger": [restated]}, duplicates={"cost_ledger": [restated, entry]})
    landing.land(sim_db.admin, sim_db.database, sim)
    assert run(sim_db.client, total, tr, vars_)[1][0][0] == before + Decimal("1.000000000001")
    assert spend_by_user() == by_user + Decimal("1.000000000001")
    landing.land(sim_db.admin, sim_db.database, sim, duplicates=True)  # re-delivered, and the old version again
    assert run(sim_db.client, total, tr, vars_)[1][0][0] == before + Decimal("1.000000000001")
    assert spend_by_user() == by_user + Decimal("1.000000000001")


def test_the_hourly_rollups_count_every_cost_entry_and_event_once(sim_db: SimDb) -> None:
    """user_spend_per_hour, cost_per_hour, calls_per_hour and delays_per_hour (migrations 0170, 0172, 0174,
    0175) are fed by the same feeds as the minute rollups: re-delivered rows and old versions landing
    again change none of them. interaction_versions (0176) holds every version of every interaction."""
    ledger = f"SELECT count(), sum(total_cost_usd) FROM {Table.COST_LEDGER} FINAL"
    spend = f"SELECT sum(entries), sum(cost_usd) FROM {Table.USER_SPEND_PER_HOUR}"
    costs = "SELECT sum(entries), sum(cost_usd), sum(input_tokens), sum(output_tokens), max(last_time) FROM {}"
    calls = ("SELECT kind, status, sum(calls), sum(timed_calls), sum(timed_output_tokens), sum(latency_sum_ms),"
             " max(last_time) FROM {} GROUP BY kind, status ORDER BY kind, status")
    # An hour's reservoir is its minutes' reservoirs merged: under 8192 values, every value, so the same quantiles.
    sketch = ("SELECT tenant, toStartOfHour({t}) AS h, kind, mcp_server_id, tool_name, provider, model,"
              " toString(quantilesIfMerge(0.5, 0.95, 0.99)(latency_state)) FROM {table} GROUP BY ALL")
    versions = "SELECT id, tenant, version, time, status, retracted FROM {} GROUP BY ALL ORDER BY ALL"
    # An hour's sketch is its minutes' sketches merged: same events, same counts, so the same quantiles.
    hours = (f"SELECT output_table, tenant, hour, quantilesBFloat16Merge(0.5, 0.95, 0.99)(delay_ms) FROM {Table.DELAYS_PER_HOUR}"
             " GROUP BY output_table, tenant, hour")
    minutes = (f"SELECT output_table, tenant, toStartOfHour(minute) AS hour, quantilesBFloat16Merge(0.5, 0.95, 0.99)(delay_ms)"
               f" FROM {Table.DELAYS_PER_MINUTE} GROUP BY output_table, tenant, hour")
    for duplicates in (False, True):
        if duplicates:
            landing.land(sim_db.admin, sim_db.database, sim_db.sim, duplicates=True)
        assert sim_db.client.query(spend).result_rows == sim_db.client.query(ledger).result_rows
        by_hour, by_minute = (sim_db.client.query(costs.format(t)).result_rows
                              for t in (Table.COST_PER_HOUR, Table.COST_PER_MINUTE))
        assert by_hour[0][0] > 0 and by_hour == by_minute
        by_hour, by_minute = (sim_db.client.query(calls.format(t)).result_rows
                              for t in (Table.CALLS_PER_HOUR, Table.CALLS_PER_MINUTE))
        assert by_hour and by_hour == by_minute
        hourly = sketch.format(t="hour", table=Table.CALLS_PER_HOUR)
        assert normalized(sim_db.client.query(hourly).result_rows) == normalized(
            sim_db.client.query(sketch.format(t="minute", table=Table.CALLS_PER_MINUTE)).result_rows)
        # Every row of the table is there; so are versions the table's own insert collapsed (a newer version
        # with the same sorting key, so the same time: it ranks first wherever they stand).
        by_id = set(sim_db.client.query(versions.format(VERSIONS[Table.INTERACTIONS])).result_rows)
        table = set(sim_db.client.query(versions.format(Table.INTERACTIONS)).result_rows)
        assert table and table <= by_id
        assert all(any(o[:2] == r[:2] and o[3] == r[3] and o[2] > r[2] for o in table) for r in by_id - table)
        by_hour = normalized(run(sim_db.client, hours, time_range(sim_db.now), {})[1])
        assert by_hour and by_hour == normalized(run(sim_db.client, minutes, time_range(sim_db.now), {})[1])
