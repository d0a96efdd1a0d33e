"""Benchmark: how long every dashboard query takes in chDB on a larger simulated data set.

Run by hand (not part of the test suite):
    .venv/bin/python -m tests.dashboards.bench_panel_sql [interactions_per_tenant] [repeats]
Prints rows per table, the median time of each query over the repeats, and the total per dashboard.
"""

from __future__ import annotations

import statistics
import sys
import tempfile
import time
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from gateledger.clickhouse.client import connect
from gateledger.clickhouse.migrate import migrate
from gateledger.settings import ClickHouseSettings, CoreSettings
from tests.dashboards import landing, simdata
from tests.dashboards.queries import alert_queries, dashboard_queries, run, time_range
from tests.dashboards.test_panel_sql import variables


def main(per_tenant: int = 3000, repeats: int = 3) -> None:
    path = tempfile.mkdtemp(prefix="gl-bench-")
    ch = ClickHouseSettings(url=f"chdb://{path}", database="bench")
    admin = connect(ch, CoreSettings())
    migrate(admin, ch)
    now = datetime.now(UTC).replace(microsecond=0)
    t0 = time.perf_counter()
    sim = simdata.generate(now, interactions_per_tenant=per_tenant, span=timedelta(hours=24))
    landing.insert(admin, "bench", sim)
    landing.insert(admin, "bench", sim, duplicates=True)
    print(f"generated and inserted in {time.perf_counter() - t0:.1f}s")
    client = connect(ch, CoreSettings(), database="bench")
    for table in sorted(sim.rows):
        print(f"  {table:<18} {client.query(f'SELECT count() FROM {table}').result_rows[0][0]:>9} rows")
    tr, vars_ = time_range(now, hours=25), variables(sim)
    per_dashboard: dict[str, float] = defaultdict(float)
    for q in [*dashboard_queries(), *alert_queries()]:
        times = []
        for _ in range(repeats):
            start = time.perf_counter()
            run(client, q.sql, tr, vars_)
            times.append(time.perf_counter() - start)
        median = statistics.median(times)
        per_dashboard[q.dashboard] += median
        print(f"{median * 1000:8.1f} ms  {q.name}")
    for uid, total in per_dashboard.items():
        print(f"{total * 1000:8.1f} ms  all queries of {uid}")


if __name__ == "__main__":
    main(*(int(a) for a in sys.argv[1:]))
