"""Two versions of the dashboards' SQL timed interleaved on one database (``python -m benchmarks.queries_ab``).

On a shared machine the load moves every figure of ``gateledger bench queries`` by a factor of 2-4
between runs; timing both versions query by query (A B A B A B) on the same data and at the same
moment leaves the load out of their ratio. The queries of another tree (e.g. main's) are written to
a file by that tree's own code (``dump``, run with that tree on PYTHONPATH); ``run`` builds the data
set of ``benchmarks.queries`` with this tree's migrations (a superset of the other's, so both sets of
queries find their tables) and times each query of both files, matched by dashboard and panel.

    PYTHONPATH=/work/main python -m benchmarks.queries_ab dump /tmp/a.json
    PYTHONPATH=$PWD python -m benchmarks.queries_ab dump /tmp/b.json
    PYTHONPATH=$PWD python -m benchmarks.queries_ab run /tmp/a.json /tmp/b.json --events 10000000
    PYTHONPATH=$PWD python -m benchmarks.queries_ab run /tmp/a.json /tmp/b.json --large-events 100000000
"""

from __future__ import annotations

import argparse
import json
import shutil
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any


def dump(out: Path) -> None:
    """Write this tree's dashboard and alert queries (dashboard, where, sql) to ``out``."""
    from tests.dashboards.queries import alert_queries, dashboard_queries

    queries = [{"dashboard": q.dashboard, "where": q.where, "sql": q.sql} for q in [*dashboard_queries(), *alert_queries()]]
    out.write_text(json.dumps(queries, indent=1))


def run(a: Path, b: Path, events: int, large_events: int, days: int, repeats: int, out: Path | None) -> dict[str, Any]:
    """Build the data set and time every query of ``a`` and ``b`` interleaved; medians and minima in ms, rows."""
    from dashboards.grafana_sql import TimeRange
    from gateledger.clickhouse.client import connect
    from gateledger.clickhouse.migrate import migrate
    from gateledger.settings import ClickHouseSettings, CoreSettings
    from tests.dashboards import landing, simdata
    from tests.dashboards.queries import run as run_panel
    from tests.dashboards.test_panel_sql import variables

    from benchmarks.queries import default_range_s, fill, grafana_interval, load, rollup_check

    qa = {(q["dashboard"], q["where"]): q["sql"] for q in json.loads(a.read_text())}
    qb = {(q["dashboard"], q["where"]): q["sql"] for q in json.loads(b.read_text())}
    path = Path(tempfile.mkdtemp(prefix="gl-bench-ab-"))
    db = "bench_ab"
    ch = ClickHouseSettings(url=f"chdb://{path / 'ch'}", database=db)
    admin = connect(ch, CoreSettings(data_dir=path))
    try:
        now = datetime.now(UTC).replace(microsecond=0)
        sim = simdata.generate(now, interactions_per_tenant=2000, span=timedelta(hours=24))
        migrate(admin, ch)
        landing.insert(admin, db, sim)
        large = bool(large_events)
        if not large:
            landing.insert(admin, db, sim, duplicates=True)
        _, copies, multiplied, rolled = fill(admin, db, large_events or events, days * 86_400_000 if large else 3_600_000)
        check = rollup_check(admin, db)
        client = connect(ch, CoreSettings(data_dir=path), database=db)
        vars_ = variables(sim)
        end = now + timedelta(minutes=1)
        load_before = load()
        rows = []
        for key in [k for k in qb if k in qa]:
            ranges = ([("default", default_range_s(key[0])), ("30d", days * 86400.0)] if large else [("25h", 25 * 3600.0)])
            for label, seconds in ranges:
                tr = TimeRange(end - timedelta(seconds=seconds), end, grafana_interval(seconds) if large else 60)
                times: dict[str, list[float]] = {"a": [], "b": []}
                n: dict[str, int] = {}
                for i in range(repeats):
                    # A B, then B A: neither side always runs on the other's warm caches
                    for side, sql in (("a", qa[key]), ("b", qb[key]))[:: 1 if i % 2 == 0 else -1]:
                        s = time.perf_counter()
                        n[side] = len(run_panel(client, sql, tr, vars_)[1])
                        times[side].append((time.perf_counter() - s) * 1000)
                rows.append({"dashboard": key[0], "query": key[1], "range": label,
                             "a_ms": round(statistics.median(times["a"]), 1), "b_ms": round(statistics.median(times["b"]), 1),
                             "a_min_ms": round(min(times["a"]), 1), "b_min_ms": round(min(times["b"]), 1),
                             "a_rows": n["a"], "b_rows": n["b"], "same_sql": qa[key] == qb[key]})
                print(json.dumps(rows[-1]), flush=True)
        client.close()
        result = {"events": large_events or events, "days": days if large else 1, "copies": copies,
                  "multiply_seconds": round(multiplied, 1), "rollup_rebuild_seconds": round(rolled, 1),
                  "rollup_check": check, "load_avg_1m": [load_before, load()], "repeats": repeats, "queries": rows}
        if out is not None:
            out.write_text(json.dumps(result, indent=1, default=str))
        return result
    finally:
        admin.close()
        shutil.rmtree(path, ignore_errors=True)


def main(argv: list[str] | None = None) -> None:
    """CLI: ``dump OUT`` or ``run A B``."""
    p = argparse.ArgumentParser(prog="python -m benchmarks.queries_ab", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    d = sub.add_parser("dump")
    d.add_argument("out", type=Path)
    r = sub.add_parser("run")
    r.add_argument("a", type=Path)
    r.add_argument("b", type=Path)
    r.add_argument("--events", type=int, default=10_000_000)
    r.add_argument("--large-events", type=int, default=0, help="instead: this many events over --days days")
    r.add_argument("--days", type=int, default=30)
    r.add_argument("--repeats", type=int, default=3)
    r.add_argument("--json", type=Path, default=None)
    args = p.parse_args(argv)
    if args.cmd == "dump":
        dump(args.out)
    else:
        result = run(args.a, args.b, args.events, args.large_events, args.days, args.repeats, args.json)
        print(json.dumps({k: v for k, v in result.items() if k != "queries"}, default=str))


if __name__ == "__main__":
    main()
