"""Each stage alone, by the stages' own benchmark code: ingest (single and batched), processors, sink."""

from __future__ import annotations

import asyncio
from typing import Any


def run(seconds: float = 10.0, processor_interactions: int = 5000, sink_rows: int = 200_000,
        runs: int = 3) -> dict[str, Any]:
    """Ingest records/s (benchmarks.ingest), processor events/s (benchmarks.processors), sink rows/s
    (benchmarks.sink); medians of ``runs`` where the stage code repeats."""
    from benchmarks.ingest import local_ingest_bench
    from benchmarks.processors import bench_logic, bench_worker
    from benchmarks.sink import end_to_end as sink_end_to_end

    ingest_runs = [asyncio.run(local_ingest_bench(seconds=seconds)) for _ in range(runs)]

    def med(mode: str, key: str) -> float:
        vals = sorted(r[mode][key] for r in ingest_runs)
        return vals[len(vals) // 2]

    sink_runs = [sink_end_to_end(rows=sink_rows) for _ in range(runs)]
    sink_rates = sorted(r["rows_per_s"] for r in sink_runs)
    return {
        "scenario": "stages",
        "ingest": {
            "single": {"requests_per_s": med("single", "requests_per_s"), "records_per_s": med("single", "records_per_s"),
                       "p50_ms": sorted(r["single"]["latency_ms"]["p50"] for r in ingest_runs)[len(ingest_runs) // 2]},
            "batch": {"batch_size": 100, "requests_per_s": med("batch", "requests_per_s"),
                      "records_per_s": med("batch", "records_per_s"),
                      "p50_ms": sorted(r["batch"]["latency_ms"]["p50"] for r in ingest_runs)[len(ingest_runs) // 2]},
            "runs": ingest_runs,
        },
        "processors": {"worker": bench_worker(processor_interactions, runs),
                       "logic": bench_logic(max(processor_interactions, 5000), runs)},
        "sink": {"rows_per_s": sink_rates[len(sink_rates) // 2], "runs": [r["rows_per_s"] for r in sink_runs],
                 "rows": sink_rows},
    }
