"""The soak's growth fit and its 7-day figures (benchmarks/soak.py): pure arithmetic on samples."""

from __future__ import annotations

from pathlib import Path

import pytest

from benchmarks.soak import WEEK_S, at_full_retention, fit, fit_segments, keeping_up, sink_minutes, week_mib


def _series(slopes: dict[str, float], minutes: int = 30) -> list[dict[str, object]]:
    return [{"t": t * 5.0, "rss_mib": {k: 100.0 + s * t * 5.0 for k, s in slopes.items()}}
            for t in range(minutes * 12)]


def test_fit_recovers_the_slope_and_extrapolates_only_growth() -> None:
    growth = fit(_series({"sink": 0.01, "broker": -0.02, "processors": 0.0}), warmup_s=300)
    assert growth["sink"]["slope_mib_per_min"] == pytest.approx(0.6)
    last = growth["sink"]["last_mib"]
    assert growth["sink"]["extrapolated_7d_mib"] == pytest.approx(last + 0.01 * (WEEK_S - 1795), abs=0.1)
    # Memory returned does not shrink the week below what is held at the end.
    assert growth["broker"]["extrapolated_7d_mib"] == growth["broker"]["last_mib"]
    assert growth["processors"]["growth_pct_per_10min"] == 0.0


def test_full_retention_adds_a_full_windows_interactions_to_the_processors_only() -> None:
    growth = fit(_series({"sink": 0.0, "processors": 0.0, "load generator": 1.0}), warmup_s=300)
    result = {"growth": growth, "interactions_per_s": 10.0, "retention_s": 120.0}
    full = at_full_retention(result, heap_bytes_per_interaction=2048, retention_s=3720.0)
    # 10/s over the 3,600 s the full window holds beyond the shortened one, 2 KiB each: 70.3125 MiB.
    assert full["processors_plateau_mib"] == pytest.approx(100.0 + 70.3, abs=0.1)
    assert full["stack_7d_mib"] == pytest.approx(100.0 + 170.3, abs=0.1)  # the load generator left out
    assert at_full_retention(result | {"retention_s": 3720.0}, 2048, 3720.0)["processors_plateau_mib"] == 100.0


def test_segments_split_at_a_restart_and_each_gets_its_own_warmup() -> None:
    # 20 minutes: the broker grows 1 MiB per 5 s sample and is restarted (new pid) at minute 10,
    # where it starts again from 100 MiB; the sink holds flat on one pid throughout.
    series = [{"t": i * 5.0,
               "rss_mib": {"broker": 100.0 + (i % 120), "sink": 500.0},
               "pid": {"broker": 1 if i < 120 else 2, "sink": 3}} for i in range(240)]
    segs = fit_segments(series, warmup_s=120)
    assert [(s["from_min"], s["to_min"]) for s in segs["broker"]] == [(2.0, 9.9), (12.0, 19.9)]
    assert all(s["slope_mib_per_min"] == pytest.approx(12.0) for s in segs["broker"])
    assert [s["growth_pct_per_10min"] for s in segs["sink"]] == [0.0]
    assert segs["sink"][0]["from_min"] == 2.0
    # A stretch shorter than min_s after its warm-up is not fitted.
    assert fit_segments(series, warmup_s=420, min_s=180)["broker"] == []


def test_a_week_is_the_last_stretch_extended_and_a_recycled_broker_its_peak() -> None:
    # The broker saw-tooths (recycled at minute 10), the sink grows on its last stretch only.
    series = [{"t": i * 5.0,
               "rss_mib": {"broker": 100.0 + (i % 120), "sink": 500.0 + max(0, i - 120) * 0.1,
                           "processors": 150.0},
               "pid": {"broker": 1 if i < 120 else 2, "sink": 3 if i < 120 else 4, "processors": 5}}
              for i in range(240)]
    result = {"growth": fit(series, 120), "segments": fit_segments(series, 120), "broker_recycles": 1,
              "interactions_per_s": 10.0, "retention_s": 120.0}
    assert week_mib(result, "broker") == 219.0  # its peak: the recycle bounds it, whatever its slope
    sink = result["segments"]["sink"][-1]
    assert sink["slope_mib_per_min"] == pytest.approx(1.2)
    assert week_mib(result, "sink") == pytest.approx(sink["last_mib"] + 1.2 / 60 * (WEEK_S - sink["to_min"] * 60),
                                                     abs=0.2)
    assert week_mib(result, "processors") == 150.0  # flat: its peak
    full = at_full_retention(result, 1000.0, 7320.0)
    assert full["processors_plateau_mib"] == pytest.approx(150.0 + 10 * 7200 * 1000 / 2**20, abs=0.1)
    assert full["stack_7d_mib"] == pytest.approx(full["processors_plateau_mib"] + 219.0 + week_mib(result, "sink"),
                                                 abs=0.2)


def test_keeping_up_counts_what_was_sent_and_landed_after_the_warmup() -> None:
    landing = [{"t": 60.0, "sent": 1000, "landed": 900}, {"t": 120.0, "sent": 2000, "landed": None},
               {"t": 180.0, "sent": 3000, "landed": 2950}, {"t": 240.0, "sent": 4000, "landed": 3600}]
    k = keeping_up(landing, warmup_s=100)
    assert k == {"sent_per_s": 16.7, "landed_per_s": 10.8, "backlog_at_warmup": 50, "backlog_at_end": 400}


def test_sink_minutes_show_when_it_fell_behind_and_its_cpu_per_landed_event() -> None:
    landing = [{"t": 60.0, "sent": 1000, "landed": 1000, "sink_cpu_s": 10.0, "sink_pid": 1, "load_1m": 1.0},
               {"t": 120.0, "sent": 2000, "landed": 1800, "sink_cpu_s": 14.0, "sink_pid": 1, "load_1m": 2.0},
               {"t": 180.0, "sent": 3000, "landed": None, "sink_cpu_s": 18.0, "sink_pid": 2, "load_1m": 2.0},
               {"t": 240.0, "sent": 4000, "landed": 4000, "sink_cpu_s": 30.0, "sink_pid": 2, "load_1m": 3.0}]
    assert sink_minutes(landing) == [
        {"minute": 2.0, "sent": 1000, "landed": 800, "backlog": 200, "sink_cpu_s": 4.0, "ms_per_landed": 5.0,
         "restarted": False, "load_1m": 2.0}]  # minutes with no count (a recycle) are left out


def test_writing_the_page_keeps_the_earlier_runs_and_their_readings(tmp_path: Path) -> None:
    from benchmarks.run import write_soak_docs

    series = _series({"sink": 0.0, "processors": 0.0})
    growth = fit(series, warmup_s=300)
    result = {"growth": growth, "segments": fit_segments(series, 300), "cpu": {"cpu_cores_used": {}},
              "landing_after_warmup": keeping_up([], 300), "achieved_events_per_s": 250, "minutes": 30.0,
              "retention_s": 120.0, "warmup_min": 5.0, "stack_extrapolated_7d_mib": 1.0, "interactions_per_s": 10.0}
    result["at_full_retention"] = at_full_retention(result, 1000.0, 7200.0)
    result["at_24h_retention"] = at_full_retention(result, 1000.0)
    page = tmp_path / "benchmarks-soak.md"
    page.write_text("# Soak benchmark\n\n## Method\n\nold method\n\n## Run of 2026-12-03, 21:30 UTC\n\nreading\n")
    write_soak_docs(result, page)
    text = page.read_text()
    assert "old method" not in text  # the method is regenerated
    assert text.count("## Run of ") == 2 and text.endswith("## Run of 2026-12-03, 21:30 UTC\n\nreading\n")
    assert text.index("| sink |") < text.index("## Run of 2026-12-03")  # the new run comes first
    assert "At 2 h windows, the embedded stack's default" in text and "At 24 h windows" in text
