"""The benchmark code keeps working (tiny sizes; the figures themselves are in docs/sink.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from gateledger.settings import Settings
from benchmarks.sink import batch_sizes, insert_paths, view_strategies


def test_insert_paths_batch_sizes_and_views_measure_what_they_say(settings: Settings, ch_client) -> None:
    db = settings.clickhouse.database
    paths = insert_paths(rows=300, batch=100, reps=1, client=ch_client, database=db)
    for table in ("mcp_calls", "raw_events"):
        assert set(paths["tables"][table]) == {"row_insert", "native_columnar", "arrow", "jsoneachrow_unchecked",
                                               "jsoneachrow_checked (sink)"}
        assert all(v > 0 for v in paths["tables"][table].values())
    sizes = batch_sizes(sizes=(50, 150), rows=300, reps=1, client=ch_client, database=db)
    assert set(sizes["rows_per_s"]) == {"50", "150"} and all(v > 0 for v in sizes["latency_s"].values())
    views = view_strategies(rows=20_000, reps=1, client=ch_client, database=db)  # raises if they disagree
    assert set(views["ms"]["all_tenants_one_month"]) == {"final_in_range", "limit_1_by", "argmax_group_by"}


def test_end_to_end_runs_in_its_own_process(tmp_path: Path, broker) -> None:
    out = tmp_path / "e2e.json"
    res = subprocess.run([sys.executable, "-c", (
        "import json, sys; from benchmarks.sink import end_to_end; "
        f"json.dump(end_to_end(rows=2000, bootstrap={broker.bootstrap!r}), open({str(out)!r}, 'w'))")],
        capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr[-2000:]
    result = json.loads(out.read_text())
    assert result["rows"] == 2000 and result["rows_per_s"] > 0
