"""Every dashboard panel (and Grafana alert rule, and dashboard variable) and every documented analyst query
over a large simulated data set in chDB: median latency of each.

Data: the dashboard tests' simulator (``tests/dashboards/simdata``: every table, realistic rows,
duplicates and restated versions) for one tenant set over 24 hours, then multiplied inside
ClickHouse by its own generator (``INSERT ... SELECT ... FROM table, numbers(1, copies)`` with fresh
ids, correlation keys and users (8 simulated users become 1000), times jittered within the hour before) until the event tables hold ``events`` rows in all.
The rollups are then filled as the sink keeps them (``sinks.clickhouse.rebuild``: every event once, at
its latest version). Panels are expanded with Grafana's ClickHouse macros over the last 25 hours
(everything), all tenants; analyst queries run with the documented parameters (one tenant, the whole
range).

The second size (``large_events``, e.g. 100M) spreads the copies over ``large_days`` days and runs
every panel, variable and alert query twice: over its dashboard's default range (alert rules: 15
minutes) and over the last 30 days, each with the interval Grafana would use (range / 1000 points,
rounded up to a whole step, at least a minute).

Generating the rows competes with everyone's jobs on a shared machine: the process's threads (chDB's
too) run at nice 10 while rows are generated and rollups rebuilt, and at their usual priority while
queries are timed (``_priority``). The 1-minute load average is recorded before and after each timed
part. After filling, one query checks that the rollups agree with the base tables they summarize
(``rollup_check``): distinct events, calls, cost entries and spend, each counted both ways.
"""

from __future__ import annotations

import math
import os
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

USER_SPREAD = 125  # copies of each simulated user
STEPS_S = (60, 120, 300, 600, 900, 1200, 1800, 3600, 7200, 10800, 21600, 43200, 86400)


def grafana_interval(range_s: float) -> int:
    """The panel interval for a range: range / 1000 points, up to the next step, at least a minute."""
    return next((s for s in STEPS_S if s >= range_s / 1000), STEPS_S[-1])


def default_range_s(uid: str) -> float:
    """A dashboard's default time range ("now-6h", "now-7d") in seconds; alert rules look back 15 minutes."""
    from dashboards import build

    if uid not in build.DASHBOARDS:
        return 900.0
    spec = build.dashboard_json(uid)["time"]["from"].removeprefix("now-")
    return float(spec[:-1]) * {"m": 60, "h": 3600, "d": 86400}[spec[-1]]


def _priority(nice: int) -> bool:
    """Set every thread of this process (chDB's pools included) to ``nice``; False where not allowed."""
    try:
        for tid in os.listdir("/proc/self/task"):
            os.setpriority(os.PRIO_PROCESS, int(tid), nice)
    except (OSError, PermissionError):
        return False
    return True


def load() -> float:
    """The 1-minute load average."""
    return round(os.getloadavg()[0], 2)


def rollup_check(admin: Any, db: str) -> dict[str, Any]:
    """Each figure from a rollup and from the base table it summarizes (latest version of each event,
    once): ``agree`` is whether every pair is equal."""
    from gateledger.tables import Table, final

    # interactions and interaction_versions: each interaction's newest version and its time (the versions
    # table also keeps versions an insert collapsed, each under a newer one of the same time).
    newest = "(uniqExact(id), sum(cityHash64(id, v, t))) FROM (SELECT id, max(version) AS v, argMax(time, version) AS t"
    (row,) = admin.query(f"""SELECT
        (SELECT sum(events) FROM {db}.{Table.LANDINGS_PER_MINUTE} WHERE output_table = '{Table.RAW_EVENTS}'),
        (SELECT uniqExact(id) FROM {db}.{Table.RAW_EVENTS}),
        (SELECT sum(calls) FROM {db}.{Table.CALLS_PER_MINUTE} WHERE kind = 'mcp'),
        (SELECT sum(calls) FROM {db}.{Table.CALLS_PER_HOUR} WHERE kind = 'mcp'),
        (SELECT count() FROM {final(f'{db}.{Table.MCP_CALLS}')}),
        (SELECT sum(entries) FROM {db}.{Table.COST_PER_MINUTE}),
        (SELECT sum(entries) FROM {db}.{Table.COST_PER_HOUR}),
        (SELECT sum(entries) FROM {db}.{Table.USER_SPEND_PER_HOUR}),
        (SELECT count() FROM {final(f'{db}.{Table.COST_LEDGER}')}),
        (SELECT sum(cost_usd) FROM {db}.{Table.COST_PER_MINUTE}),
        (SELECT sum(cost_usd) FROM {db}.{Table.COST_PER_HOUR}),
        (SELECT sum(cost_usd) FROM {db}.{Table.USER_SPEND_PER_HOUR}),
        (SELECT sum(total_cost_usd) FROM {final(f'{db}.{Table.COST_LEDGER}')}),
        (SELECT {newest} FROM {db}.{Table.INTERACTIONS} GROUP BY id)),
        (SELECT {newest} FROM {db}.{Table.INTERACTION_VERSIONS} GROUP BY id))""").result_rows
    pairs = {"raw events": row[0:2], "mcp calls": row[2:5], "cost entries": row[5:9], "spend usd": row[9:13],
             "newest interaction versions": row[13:15]}
    return {"agree": all(len(set(v)) == 1 for v in pairs.values()),
            **{k: [str(x) for x in v] for k, v in pairs.items()}}


def distinct_events(admin: Any, db: str, table: str) -> int:
    """The events ``table`` holds, each once (any copy or version): distinct ids. (FINAL would be slower
    and, on a table whose versions move in time, keep more than one row per event: tables.final().)"""
    return int(admin.query(f"SELECT uniqExact(id) FROM {db}.{table}").result_rows[0][0])


def multiply(admin: Any, db: str, events: int, jitter_ms: int) -> tuple[dict[str, int], int]:
    """Copy every event table's rows inside ClickHouse until they hold ``events``; the tables and copies."""
    from gateledger.tables import LATEST

    # The event tables (each has a <name>_latest view); tables filled from them by a view (VERSIONS) follow.
    tables = [str(t) for t in LATEST]
    # Counted after collapsing (each event once): the seeded duplicates merge away, and the target is events.
    base = {name: distinct_events(admin, db, name) for name in tables}
    copies = max(0, math.ceil(events / max(sum(base.values()), 1)) - 1)
    if copies:
        for name in tables:
            columns = {c for (c,) in admin.query(
                f"SELECT name FROM system.columns WHERE database = '{db}' AND table = '{name}'").result_rows}
            # Each copy is its own events: correlation keys are copied too, so that a lookup by one of them
            # (the interaction drill-down, a user's trail) finds one event's worth of rows, not every copy's.
            keys = "".join(f", if({k} = '', '', concat({k}, '~', toString(c.number))) AS {k}"
                           for k in ("request_id", "context_id", "interaction_id", "event_id") if k in columns)
            keys += "".join(f", arrayMap(x -> concat(x, '~', toString(c.number)), {k}) AS {k}"
                            for k in ("event_ids", "context_ids") if k in columns)
            # The simulator has 8 users; the copies are spread over 1000 (a 10M-event deployment has
            # more than 8 people), so that a user's trail is one user's, not an eighth of everything.
            keys += "".join(f", if({k} = '', '', concat({k}, '~', toString(c.number % {USER_SPREAD}))) AS {k}"
                            for k in ("user_id", "subject") if k in columns)
            admin.command(
                f"INSERT INTO {db}.{name} SELECT src.* REPLACE (concat(id, '~', toString(c.number)) AS id, "
                f"time - toIntervalMillisecond((c.number * 7919 + cityHash64(id)) % {jitter_ms}) AS time{keys}) "
                f"FROM {db}.{name} AS src, numbers(1, {copies}) AS c",
                settings={"async_insert": 0, "max_partitions_per_insert_block": 10000,
                          "insert_deduplicate": 0})
    return base, copies


def fill(admin: Any, db: str, events: int, jitter_ms: int) -> tuple[dict[str, int], int, float, float]:
    """Multiply, then fill the rollups as the sink keeps them; the tables, copies and seconds each took."""
    from sinks.clickhouse.rebuild import rebuild_rollups

    _priority(10)
    try:
        t = time.perf_counter()
        base, copies = multiply(admin, db, events, jitter_ms)
        multiplied = time.perf_counter() - t
        t = time.perf_counter()
        rebuild_rollups(admin, db)
        return base, copies, multiplied, time.perf_counter() - t
    finally:
        _priority(0)


def run(events: int = 10_000_000, repeats: int = 3, per_tenant: int = 2000, large_events: int = 0,
        large_days: int = 30) -> dict[str, Any]:
    """Median milliseconds of each query over ``events`` rows (and over ``large_events`` in ``large_days``)."""
    from gateledger.clickhouse.client import connect
    from gateledger.clickhouse.migrate import migrate
    from gateledger.settings import ClickHouseSettings, CoreSettings
    from tests.dashboards import landing, simdata
    from tests.dashboards.queries import alert_queries, dashboard_queries, time_range
    from tests.dashboards.queries import run as run_panel
    from tests.dashboards.test_panel_sql import variables
    from tests.sinks.clickhouse.test_analyst_docs import documented_queries

    path = Path(tempfile.mkdtemp(prefix="gl-bench-q-"))
    db = "bench"
    ch = ClickHouseSettings(url=f"chdb://{path / 'ch'}", database=db)
    admin = connect(ch, CoreSettings(data_dir=path))

    def timed(fn: Any) -> tuple[float, int]:
        runs, n = [], 0
        for _ in range(repeats):
            s = time.perf_counter()
            n = fn()
            runs.append((time.perf_counter() - s) * 1000)
        return round(statistics.median(runs), 1), n

    try:
        now = datetime.now(UTC).replace(microsecond=0)
        t = time.perf_counter()
        sim = simdata.generate(now, interactions_per_tenant=per_tenant, span=timedelta(hours=24))
        seeded = time.perf_counter() - t
        result: dict[str, Any] = {"scenario": "queries", "repeats": repeats}
        if events:  # events=0: the large size alone
            migrate(admin, ch)
            landing.insert(admin, db, sim)
            landing.insert(admin, db, sim, duplicates=True)
            base, copies, multiplied, rolled = fill(admin, db, events, 3_600_000)
            counts = {name: distinct_events(admin, db, name) for name in base}
            check = rollup_check(admin, db)
            client = connect(ch, CoreSettings(data_dir=path), database=db)
            tr, vars_ = time_range(now, hours=25), variables(sim)
            load_before = load()
            panels = []
            for q in [*dashboard_queries(), *alert_queries()]:
                ms, n = timed(lambda q=q: len(run_panel(client, q.sql, tr, vars_)[1]))
                panels.append({"dashboard": q.dashboard, "query": q.where, "kind": q.query_type, "ms": ms, "rows": n})
            user = next(iter(sorted({m.user_id for m in sim.rows["mcp_calls"]})))  # type: ignore[attr-defined]
            request = next(m.request_id for m in sim.rows["mcp_calls"] if getattr(m, "request_id", None))  # type: ignore[attr-defined]
            params = {"tenant": simdata.TENANTS[0], "since": (now - timedelta(days=2)).strftime("%Y-%m-%d"),
                      "until": (now + timedelta(days=1)).strftime("%Y-%m-%d"), "user": user, "request_id": request}
            analysts = []
            for name, sql in documented_queries().items():
                text = sql.replace("gateledger.", f"{db}.")
                ms, n = timed(lambda text=text: len(client.query(text, parameters=params).result_rows))
                analysts.append({"query": name, "ms": ms, "rows": n})
            client.close()
            result.update({
                "events": sum(counts.values()), "target_events": events, "copies": copies,
                "rows_per_table": counts, "seed_seconds": round(seeded, 1), "multiply_seconds": round(multiplied, 1),
                "rollup_rebuild_seconds": round(rolled, 1), "rollup_check": check,
                "load_avg_1m": [load_before, load()], "panels": panels, "analysts": analysts,
                "panels_total_ms": round(sum(p["ms"] for p in panels), 1),
                "analysts_total_ms": round(sum(a["ms"] for a in analysts), 1),
            })
            admin.command(f"DROP DATABASE {db} SYNC")  # room on disk and in memory for the large size
        if large_events:
            result["large"] = _large(path, now, sim, large_events, large_days, repeats, timed)
        return result
    finally:
        admin.close()
        shutil.rmtree(path, ignore_errors=True)


def _large(path: Path, now: datetime, sim: Any, events: int, days: int, repeats: int, timed: Any) -> dict[str, Any]:
    """The second size: the same seed multiplied to ``events`` over ``days`` days, every dashboard query
    over its default range and over the last 30 days."""
    from dashboards.grafana_sql import TimeRange
    from gateledger.clickhouse.client import connect
    from gateledger.clickhouse.migrate import migrate
    from gateledger.settings import ClickHouseSettings, CoreSettings
    from tests.dashboards import landing, simdata
    from tests.dashboards.queries import alert_queries, dashboard_queries
    from tests.dashboards.queries import run as run_panel
    from tests.dashboards.test_panel_sql import variables

    db = "bench_large"
    ch = ClickHouseSettings(url=f"chdb://{path / 'ch'}", database=db)
    admin = connect(ch, CoreSettings(data_dir=path))
    migrate(admin, ch)
    landing.insert(admin, db, sim)
    base, copies, multiplied, rolled = fill(admin, db, events, days * 86_400_000)
    counts = {name: admin.query(f"SELECT count() FROM {db}.{name}").result_rows[0][0] for name in base}
    check = rollup_check(admin, db)
    client = connect(ch, CoreSettings(data_dir=path), database=db)
    vars_ = variables(sim)
    end = now + timedelta(minutes=1)
    load_before = load()
    panels = []
    for q in [*dashboard_queries(), *alert_queries()]:
        row: dict[str, Any] = {"dashboard": q.dashboard, "query": q.where, "kind": q.query_type}
        for label, seconds in (("default", default_range_s(q.dashboard)), ("30d", 30 * 86400.0)):
            tr = TimeRange(end - timedelta(seconds=seconds), end, grafana_interval(seconds))
            row[f"{label}_ms"], row[f"{label}_rows"] = timed(lambda q=q, tr=tr: len(run_panel(client, q.sql, tr, vars_)[1]))
        panels.append(row)
    client.close()
    admin.close()
    return {"events": sum(counts.values()), "target_events": events, "days": days, "copies": copies,
            "rows_per_table": counts, "multiply_seconds": round(multiplied, 1),
            "rollup_rebuild_seconds": round(rolled, 1), "rollup_check": check, "load_avg_1m": [load_before, load()],
            "panels": panels}
