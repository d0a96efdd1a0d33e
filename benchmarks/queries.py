"""Every dashboard panel (and Grafana alert rule, and dashboard variable) and every documented analyst query
over a large simulated data set in chDB: median latency of each.

Data: the dashboard tests' simulator (``tests/dashboards/simdata``: every table, realistic rows,
duplicates and restated versions) for one tenant set over 24 hours, then multiplied inside
ClickHouse (``INSERT ... SELECT`` with fresh ids and times jittered within the hour before) until the
event tables hold ``events`` rows in all. Materialized views (usage and cost rollups) fire on those
inserts as they do in production. Panels are expanded with Grafana's ClickHouse macros over the last
25 hours, all tenants; analyst queries run with the documented parameters (one tenant, the whole
range).
"""

from __future__ import annotations

import math
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def run(events: int = 10_000_000, repeats: int = 3, per_tenant: int = 2000) -> dict[str, Any]:
    """Median milliseconds of each query over ``events`` rows."""
    from gateledger.clickhouse.client import connect
    from gateledger.clickhouse.migrate import migrate
    from gateledger.settings import ClickHouseSettings, CoreSettings
    from tests.dashboards import simdata
    from tests.dashboards.queries import alert_queries, dashboard_queries
    from tests.dashboards.queries import run as run_panel
    from tests.dashboards.queries import time_range
    from tests.dashboards.test_panel_sql import variables
    from tests.sinks.test_analyst_docs import documented_queries

    path = Path(tempfile.mkdtemp(prefix="gl-bench-q-"))
    db = "bench"
    ch = ClickHouseSettings(url=f"chdb://{path / 'ch'}", database=db)
    admin = connect(ch, CoreSettings(data_dir=path))
    try:
        migrate(admin, ch)
        now = datetime.now(UTC).replace(microsecond=0)
        t = time.perf_counter()
        sim = simdata.generate(now, interactions_per_tenant=per_tenant, span=timedelta(hours=24))
        simdata.insert(admin, db, sim)
        simdata.insert(admin, db, sim, duplicates=True)
        seeded = time.perf_counter() - t
        tables = []
        for (name,) in admin.query(
                f"SELECT table FROM system.columns WHERE database = '{db}' AND name IN ('id', 'time') "
                "GROUP BY table HAVING count() = 2").result_rows:
            engine = admin.query(f"SELECT engine FROM system.tables WHERE database = '{db}' AND name = '{name}'"
                                 ).result_rows[0][0]
            if "MergeTree" in engine:
                tables.append(name)
        # Counted after collapsing (FINAL): the seeded duplicates merge away, and the target is events.
        base = {name: admin.query(f"SELECT count() FROM {db}.{name} FINAL").result_rows[0][0] for name in tables}
        copies = max(0, math.ceil(events / max(sum(base.values()), 1)) - 1)
        t = time.perf_counter()
        if copies:
            for name in tables:
                admin.command(
                    f"INSERT INTO {db}.{name} SELECT src.* REPLACE (concat(id, '~', toString(c.number)) AS id, "
                    f"time - toIntervalMillisecond((c.number * 7919 + cityHash64(id)) % 3600000) AS time) "
                    f"FROM {db}.{name} AS src, numbers(1, {copies}) AS c",
                    settings={"async_insert": 0, "max_partitions_per_insert_block": 10000,
                              "insert_deduplicate": 0})
        multiplied = time.perf_counter() - t
        counts = {name: admin.query(f"SELECT count() FROM {db}.{name} FINAL").result_rows[0][0] for name in tables}
        client = connect(ch, CoreSettings(data_dir=path), database=db)
        tr, vars_ = time_range(now, hours=25), variables(sim)

        def timed(fn: Any) -> tuple[float, int]:
            runs, n = [], 0
            for _ in range(repeats):
                s = time.perf_counter()
                n = fn()
                runs.append((time.perf_counter() - s) * 1000)
            return round(statistics.median(runs), 1), n

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
        return {
            "scenario": "queries", "events": sum(counts.values()), "target_events": events, "copies": copies,
            "rows_per_table": counts, "seed_seconds": round(seeded, 1), "multiply_seconds": round(multiplied, 1),
            "repeats": repeats, "panels": panels, "analysts": analysts,
            "panels_total_ms": round(sum(p["ms"] for p in panels), 1),
            "analysts_total_ms": round(sum(a["ms"] for a in analysts), 1),
        }
    finally:
        admin.close()
        shutil.rmtree(path, ignore_errors=True)
