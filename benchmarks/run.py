"""Running scenarios (each in a fresh process), ratios to the baseline, tables, JSON and docs/benchmarks.md."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import REPO, machine, ratio, table

PROCESSED_TABLES = ("mcp_calls", "llm_calls", "policy_decisions", "webhook_decisions")
SCENARIOS = ("baseline", "stages", "end-to-end", "queries", "memory")

# Sizes: "full" is the documented run; "quick" is for trying the command out.
PROFILES: dict[str, dict[str, dict[str, Any]]] = {
    "full": {
        "baseline": {"events": 200_000, "runs": 3},
        "stages": {"seconds": 10.0, "processor_interactions": 5000, "sink_rows": 200_000, "runs": 3},
        "end-to-end": {"max_interactions": 6000, "paced_seconds": 20.0},
        "queries": {"events": 10_000_000, "repeats": 3, "large_events": 100_000_000, "large_days": 30},
        "memory": {"interactions": 5000, "max_interactions": 4000, "paced_seconds": 15.0},
    },
    "quick": {
        "baseline": {"events": 50_000, "runs": 1},
        "stages": {"seconds": 3.0, "processor_interactions": 1000, "sink_rows": 20_000, "runs": 1},
        "end-to-end": {"max_interactions": 1000, "paced_seconds": 6.0},
        "queries": {"events": 200_000, "repeats": 1, "per_tenant": 300, "large_events": 1_000_000, "large_days": 30},
        "memory": {"interactions": 1000, "max_interactions": 800, "paced_seconds": 5.0},
    },
}


def scenario_in_process(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario here (the caller is a fresh process)."""
    if name == "baseline":
        from benchmarks.baseline import run
    elif name == "stages":
        from benchmarks.stages import run
    elif name == "end-to-end":
        from benchmarks.end_to_end import run
    elif name == "queries":
        from benchmarks.queries import run
    elif name == "memory":
        from benchmarks.memory import run
    elif name == "soak":
        from benchmarks.soak import run
    else:
        raise ValueError(f"unknown scenario {name!r}")
    started = time.perf_counter()
    result = run(**params)
    result["wall_seconds"] = round(time.perf_counter() - started, 1)
    return result


def scenario_subprocess(name: str, params: dict[str, Any]) -> dict[str, Any]:
    """Run one scenario in a fresh Python process (one chDB directory per process)."""
    with tempfile.TemporaryDirectory(prefix="gl-bench-run-") as tmp:
        out = Path(tmp) / "result.json"
        env = dict(os.environ)
        env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
        subprocess.run([sys.executable, "-m", "benchmarks.run", name, json.dumps(params), str(out)], cwd=REPO,
                       env=env, check=True)
        return json.loads(out.read_text())


# -- ratios and tables ------------------------------------------------------------------------------


def with_ratios(results: dict[str, Any]) -> dict[str, Any]:
    """Add ``ratios`` to every scenario: throughput / baseline events/s, time / baseline delay p50,
    memory / the baseline process's peak RSS."""
    base = results.get("baseline") or {}
    eps, delay, rss = base.get("events_per_s", 0), (base.get("delay_ms") or {}).get("p50", 0), base.get("peak_rss_mib", 0)
    if "stages" in results:
        st = results["stages"]
        st["ratios"] = {
            "ingest_single_records_per_s": ratio(st["ingest"]["single"]["records_per_s"], eps),
            "ingest_batch_records_per_s": ratio(st["ingest"]["batch"]["records_per_s"], eps),
            "processors_worker_events_per_s": ratio(st["processors"]["worker"]["events_per_s_median"], eps),
            "processors_pipeline_events_per_s": ratio(
                st["processors"]["worker"].get("pipeline_events_per_s_median", 0), eps),
            "processors_logic_events_per_s": ratio(st["processors"]["logic"]["events_per_s_median"], eps),
            "sink_rows_per_s": ratio(st["sink"]["rows_per_s"], eps),
        }
    if "end-to-end" in results:
        e = results["end-to-end"]
        e["ratios"] = {"sustained_events_per_s": ratio(e["max"]["sustained_events_per_s"], eps),
                       "steady_state_events_per_s": ratio(e["max"].get("steady_state_events_per_s", 0), eps),
                       "ingest_events_per_s": ratio(e["max"]["ingest_events_per_s"], eps)}
        for p in e["paced"]:
            p["ratios"] = {g: {k: ratio(v, delay) if v is not None else None for k, v in d.items() if k != "rows"}
                           for g, d in p["delay_ms"].items()}
    if "queries" in results:
        q = results["queries"]
        for item in [*q.get("panels", []), *q.get("analysts", [])]:
            item["ratio"] = ratio(item["ms"], delay)
    if "memory" in results:
        m = results["memory"]
        m["ratios"] = {k: ratio(v, rss) for k, v in m["peak_rss_mib_at_90pct"].items()}
    return results


def tables(results: dict[str, Any]) -> list[str]:
    """Markdown tables of whatever scenarios the results hold."""
    out = []
    b = results.get("baseline")
    if b:
        out.append(table("baseline: raw aiokafka produce -> consume -> batched chDB insert (no processing)",
                         ["figure", "value", "runs"],
                         [["events/s", b["events_per_s"], ", ".join(f"{x:,}" for x in b["events_per_s_runs"])],
                          [f"produce -> queryable delay p50 / p95 / p99 at {b['paced_rate']:,} events/s (ms)",
                           f"{b['delay_ms']['p50']} / {b['delay_ms']['p95']} / {b['delay_ms']['p99']}", ""],
                          ["peak RSS of the process (MiB)", b["peak_rss_mib"], ""],
                          ["event size (bytes, mean)", b["avg_event_bytes"], ""]]))
    s = results.get("stages")
    if s:
        r = s.get("ratios", {})
        out.append(table("stages, each alone", ["stage", "rate", "unit", "× baseline"], [
            ["ingest, 1 record per POST", s["ingest"]["single"]["records_per_s"], "records/s",
             r.get("ingest_single_records_per_s")],
            ["ingest, 100 records per POST", s["ingest"]["batch"]["records_per_s"], "records/s",
             r.get("ingest_batch_records_per_s")],
            ["processors, one worker, normalize + correlate (Kafka in and out)",
             s["processors"]["worker"]["events_per_s_median"], "events/s", r.get("processors_worker_events_per_s")],
            ["processors, one worker, full pipeline (+ cost, budgets)",
             s["processors"]["worker"].get("pipeline_events_per_s_median", "–"), "events/s",
             r.get("processors_pipeline_events_per_s")],
            ["processors, one worker, full pipeline, per CPU second of the worker (/proc; the load-robust figure)",
             s["processors"]["worker"].get("pipeline_events_per_cpu_s_median", "–"), "events/CPU s", None],
            ["processors, stage logic only", s["processors"]["logic"]["events_per_s_median"], "events/s",
             r.get("processors_logic_events_per_s")],
            ["sink, Kafka -> chDB", s["sink"]["rows_per_s"], "rows/s", r.get("sink_rows_per_s")],
        ]))
    e = results.get("end-to-end")
    if e:
        r = e.get("ratios", {})
        out.append(table("end to end: simulator -> HTTP ingest -> Kafka -> processors -> sink -> ClickHouse",
                         ["figure", "value", "× baseline"], [
                             ["sustained raw events/s (raw and processed rows queryable)",
                              e["max"]["sustained_events_per_s"], r.get("sustained_events_per_s")],
                             ["steady state: raw events/s in the middle 60 % of that window (processed rows landed)",
                              e["max"].get("steady_state_events_per_s"), r.get("steady_state_events_per_s")],
                             ["raw events/s until the last interaction landed (includes the deliberate waits)",
                              e["max"].get("all_outputs_events_per_s"), None],
                             ["ingest accepted events/s during it", e["max"]["ingest_events_per_s"],
                              r.get("ingest_events_per_s")],
                             ["raw events / output rows in the run",
                              f"{e['max']['raw_events']:,} / {e['max']['rows_landed']:,}", None]]))
        rows = []
        for p in e["paced"]:
            for g in ("raw_events", "processed", *PROCESSED_TABLES, "interactions",
                      "interactions_after_last_event", "interactions_last_event_to_emitted",
                      "interactions_emitted_to_queryable"):
                if g not in p["delay_ms"]:
                    continue
                d, rr = p["delay_ms"][g], p.get("ratios", {}).get(g, {})
                rows.append([f"{int(p['fraction'] * 100)} % ({p['achieved_events_per_s']:,}/s)", g,
                             d["p50"], d["p95"], d["p99"],
                             f"{rr.get('p50')} / {rr.get('p95')} / {rr.get('p99')}"])
        out.append(table("event time -> queryable delay (ms) at fractions of the maximum",
                         ["load", "rows", "p50", "p95", "p99", "× baseline p50 (p50 / p95 / p99)"], rows))
        phases = [("max", e["max"])] + [(f"{int(p['fraction'] * 100)} %", p) for p in e["paced"]]
        names = list((e["max"].get("cpu") or {}).get("cpu_cores_used", {}))
        if names:
            out.append(table("CPU cores used per process during each phase (CPU seconds / wall seconds, from /proc)",
                             ["phase", *names], [[ph, *[(p.get("cpu") or {}).get("cpu_cores_used", {}).get(n)
                                                         for n in names]] for ph, p in phases]))
        w = e.get("deliberate_waits")
        if w:
            out.append(f"Interactions close on event-time waits by design (idle advance {w['idle_advance_s']:g} s, "
                       f"lateness {w['lateness_s']:g} s): "
                       "they hold only interactions that never complete; `interactions_last_event_to_emitted` is "
                       "emitted_at − end_time (transport, processing, and such a wait), "
                       "`interactions_emitted_to_queryable` the transport and sink after it; "
                       "the sustained rate counts raw and processed rows; "
                       f"the maximum's interactions landed {e['max'].get('interactions_landed_after_s')} s after "
                       "the first send.")
    m = results.get("memory")
    if m:
        rr = m.get("ratios", {})
        rows = [[name, m["peak_rss_mib_at_90pct"].get(name), m["peak_rss_mib_at_max"].get(name), rr.get(name)]
                for name in ("ingest", "processors", "sink", "broker")]
        out.append(table(f"peak RSS (MiB) at 90 % of the maximum ({m['sustained_rate_events_per_s']:,} events/s) "
                         "and at the maximum", ["service", "at 90 %", "at max", "× baseline process"], rows))
        st = m["state"]
        out.append(table("processor state per interaction", ["figure", "bytes"], [
            ["correlate state, as persisted to the changelog", st["correlate_state_bytes_per_interaction"]],
            ["normalize state (dedup / merge keys) per interaction", st["normalize_state_bytes_per_interaction"]],
            ["Python heap held, per interaction in state", st["heap_bytes_per_interaction"]],
        ]))
    so = results.get("soak")
    if so:
        from benchmarks.soak import table_rows

        out.append(table(f"soak: {so['achieved_events_per_s']:,} raw events/s for {so['minutes']:g} min "
                         f"(retention {so['retention_s'] or 'default'} s; fit after {so['warmup_min']:g} min; "
                         f"broker recycled {so.get('broker_recycles', 0)}× at "
                         f"{so.get('broker_recycle_mib') or 'the default'} MiB)",
                         ["process", "mean RSS MiB", "peak MiB", "last MiB", "MiB/min", "% per 10 min",
                          "7 days MiB", "CPU cores"], table_rows(so)))
        segs = [[name, f"{g['from_min']}–{g['to_min']}", g["first_mib"], g["peak_mib"], g["last_mib"],
                 g["slope_mib_per_min"], g["growth_pct_per_10min"]]
                for name, gs in (so.get("segments") or {}).items() for g in gs]
        out.append(table("soak: growth per stretch a process lived, each after its own warm-up",
                         ["process", "minutes", "first MiB", "peak MiB", "last MiB", "MiB/min",
                          "% per 10 min"], segs))
        anon = [[name, f"{g['from_min']}–{g['to_min']}", g["first_mib"], g["last_mib"], g["slope_mib_per_min"],
                 g["growth_pct_per_10min"]]
                for name, gs in (so.get("segments_anon") or {}).items() for g in gs]
        if anon:
            out.append(table("soak: anonymous memory (RSS not backed by a file) per stretch",
                             ["process", "minutes", "first MiB", "last MiB", "MiB/min", "% per 10 min"], anon))
        k = so.get("landing_after_warmup") or {}
        out.append(table("soak: raw events after the warm-up", ["figure", "value"], [
            ["sent per s", k.get("sent_per_s")], ["landed in ClickHouse per s", k.get("landed_per_s")],
            ["sent, not landed, at warm-up end", k.get("backlog_at_warmup")],
            ["sent, not landed, at the end", k.get("backlog_at_end")]]))
        mins = so.get("sink_minutes") or []
        if mins:
            out.append(table("soak: the sink minute by minute (raw events; CPU per landed raw event; "
                             "* = the sink restarted in that minute, a recycle)",
                             ["minute", "sent", "landed", "behind", "sink CPU s", "ms CPU per landed",
                              "load 1 min"],
                             [[f"{m['minute']:g}{'*' if m['restarted'] else ''}", m["sent"], m["landed"],
                               m["backlog"], m["sink_cpu_s"], m["ms_per_landed"], m["load_1m"]]
                              for m in mins]))
    q = results.get("queries")
    if q:
        def loads(part: dict[str, Any]) -> str:
            la = part.get("load_avg_1m")
            return f"; load average (1 min) {la[0]} before, {la[1]} after" if la else ""

        def agree(part: dict[str, Any]) -> str:
            c = part.get("rollup_check")
            return "" if not c else "; rollups agree with the base tables" if c["agree"] else "; ROLLUPS DISAGREE"

        if q.get("panels"):
            rows = [[p["dashboard"], p["query"], p["ms"], p["rows"], p.get("ratio")] for p in q["panels"]]
            out.append(table(f"dashboard queries over {q['events']:,} events (median of {q['repeats']}, ms{loads(q)}{agree(q)})",
                             ["dashboard", "panel / variable / rule", "ms", "rows", "× baseline p50 delay"], rows))
        large = q.get("large")
        if large:
            rows = [[p["dashboard"], p["query"], p["default_ms"], p["default_rows"], p["30d_ms"], p["30d_rows"]]
                    for p in large["panels"]]
            out.append(table(f"dashboard queries over {large['events']:,} events in {large['days']} days (median of "
                             f"{q['repeats']}, ms{loads(large)}{agree(large)}): the dashboard's default range, and the last 30 days",
                             ["dashboard", "panel / variable / rule", "default ms", "rows", "30 days ms", "rows"], rows))
        if q.get("analysts"):
            rows = [[a["query"], a["ms"], a["rows"], a.get("ratio")] for a in q["analysts"]]
            out.append(table(f"analyst queries (docs/analysts.md) over {q['events']:,} events (median of {q['repeats']}, ms{loads(q)})",
                             ["query", "ms", "rows", "× baseline p50 delay"], rows))
    return out


DOC_HEAD = """# Benchmarks

Regenerated by one command, `gateledger bench all --write-docs` (or `make bench`); the raw results
are in `docs/benchmarks.json`. Every scenario runs in its own process. **Every figure is also given as
a ratio to the baseline measured in the same run** (the physical limit of this machine: raw aiokafka
produce → consume → batched chDB insert of the same events, no processing): throughputs ÷ baseline
events/s, delays and query times ÷ the baseline's produce → queryable p50 delay, memory ÷ the
baseline process's peak RSS. The machine was shared with other jobs while this ran: figures are
medians of repeated runs where the scenario repeats, and the ratios are the better guide.

Scenarios: `gateledger bench baseline | stages | end-to-end | queries | memory | all`
(`--quick` for small sizes, `--json FILE`). Methods are in each module's docstring (`benchmarks/`).
"""


def write_docs(results: dict[str, Any], path: Path) -> None:
    """docs/benchmarks.md (tables) and docs/benchmarks.json (everything) from one run's results."""
    m = results["machine"]
    profile = results.get("profile", "full")
    sizes = json.dumps(PROFILES[profile])
    lines = [DOC_HEAD, f"**Profile of this run: `{profile}`** (sizes: `{sizes}`)"
             + (" — the small sizes, not the documented 10M-event run; `make bench` runs the full profile."
                if profile == "quick" else "") + "\n", "## Machine", "",
             f"- CPU: {m['cpu']}, {m['cores']} cores; RAM {m['ram_gib']} GiB; {m['os']}",
             f"- load average (1 min) when the run started: {m['load_avg_1m_at_start']}; other engineers' jobs ran too",
             f"- Python {m['python']}; " + ", ".join(f"{k} {v}" for k, v in m["versions"].items() if v),
             f"- broker: {m['broker']}; ClickHouse: chDB in-process; commit {m['commit']}; run at {m['when']}",
             f"- wall time per scenario (s): " + ", ".join(
                 f"{k} {v.get('wall_seconds')}" for k, v in results.items() if isinstance(v, dict) and "wall_seconds" in v),
             "", "## Results", ""]
    for t in tables(results):
        lines += [t, ""]
    lines += [NOTES]
    path.write_text("\n".join(lines))
    path.with_suffix(".json").write_text(json.dumps(results, indent=1, default=str))


NOTES = """## Reading the numbers

- **end to end** is bounded by the processors and the sink, not by ingest (compare the stages). The
  load generator (the simulator's traffic, paced) shares the 2 cores with the whole stack.
- **delay** is an event's own time → the moment ClickHouse stored its row (`inserted_at`):
  `raw_events` (ingest → Kafka → sink), `processed` (the processors' mcp/llm/policy/webhook rows: the
  first version of each), `interactions` (emitted once an interaction is complete and settled, or
  at its timeout: that wait is by design, not transport).
- **state per interaction**: the correlate stage keeps each interaction (open, and closed ones until
  retention) in a changelog-backed table; the figure is measured on the real stage logic.
- **queries**: the data set is the dashboard tests' simulator multiplied inside ClickHouse; all rows
  fall within the last 25 hours, so every dashboard panel scans everything (the worst case).
  Rollups fed by the sink itself (not by materialized views) are not multiplied: `failing_tools`
  reads them and finds few rows.
"""


# Issue 23's soak, as the lead runs it after a merge (docs/benchmarks-soak.md says why these settings).
SOAK_30_MIN = ("gateledger bench soak --minutes 30 --rate 255 --every 5 --warmup 5 --retention-s 120 "
               "--broker-recycle-mib 1024 --write-docs")


def write_soak_docs(result: dict[str, Any], path: Path) -> None:
    """docs/benchmarks-soak.md (method, this run's tables and plot, then the earlier runs) and .json."""
    from benchmarks.soak import __doc__ as method

    m = machine()
    earlier = ""
    if path.exists():  # the earlier runs and their hand-written readings stay, after this one
        old = path.read_text()
        earlier = old[old.index("\n## Run of ") + 1:] if "\n## Run of " in old else ""
    lines = ["# Soak benchmark", "",
             "`gateledger bench soak --minutes N --rate R [--retention-s S] [--broker-recycle-mib M] --write-docs`",
             "regenerates this page's method, tables and plot (`docs/benchmarks-soak.png`, raw samples in",
             "`docs/benchmarks-soak.json`); the reading under each run, and the earlier runs, are written by hand.",
             "", "Issue 23's 30-minute soak (half the end-to-end maximum, one command, on a quiet machine):",
             "", f"    {SOAK_30_MIN}", "",
             "120 s processor windows reach their plateau within the 5-minute warm-up; the broker grows",
             "~50–60 MiB/min at this rate, so the default recycle bound (1,024 MiB) is passed once, at",
             "about minute 17, and each stretch (5–17, ~22–30) is fitted after its own warm-up. Read the",
             "sink's minute-by-minute table: a recycle's drain lets a sink that fell behind catch up, so",
             "whether it keeps up shows there, not in the totals.",
             "", "## Method", "", (method or "").strip(), "",
             f"Machine: {m['cpu']}, {m['cores']} cores, {m['ram_gib']} GiB.", "",
             f"## Run of {m['when'][:16].replace('T', ', ')} UTC", "",
             f"Load (1 min) {m['load_avg_1m_at_start']} when this page was written; commit {m['commit']}.", "",
             *(part for t in tables({"soak": result}) for part in (t, "")),  # a table ends at a blank line
             f"Whole stack extrapolated to 7 days at this rate: **{result['stack_extrapolated_7d_mib']} MiB** "
             "(sum of the services' fitted lines; the load generator is not part of the stack).", "",
             *(line for key, label in (("at_full_retention", ", the embedded stack's default"),
                                       ("at_24h_retention", ", the processors' own default"))
               if (full := result.get(key))
               for line in (f"At {full['retention_s'] / 3600:g} h windows{label} (method above: "
                            f"{full['heap_bytes_per_interaction']:,} B of heap per interaction in state): processors' "
                            f"plateau **{full['processors_plateau_mib']} MiB**, whole stack over 7 days "
                            f"**{full['stack_7d_mib']} MiB**.", "")),
             "![RSS and CPU per service](benchmarks-soak.png)", "", *([earlier] if earlier else [])]
    path.write_text("\n".join(lines))
    path.with_suffix(".json").write_text(json.dumps(result, indent=1, default=str))

def main() -> None:
    """``python -m benchmarks.run NAME PARAMS_JSON OUT``: one scenario in this (fresh) process."""
    name, params, out = sys.argv[1], json.loads(sys.argv[2]), Path(sys.argv[3])
    out.write_text(json.dumps(scenario_in_process(name, params), default=str))


def run_scenarios(names: list[str], quick: bool = False, echo: Any = print) -> dict[str, Any]:
    """The baseline first (always), then each scenario; every result with its ratios."""
    profile = PROFILES["quick" if quick else "full"]
    results: dict[str, Any] = {"machine": machine(), "profile": "quick" if quick else "full"}
    for name in ["baseline", *[n for n in names if n != "baseline"]]:
        echo(f"-- {name} ...")
        results[name] = scenario_subprocess(name, profile[name])
    with_ratios(results)
    for t in tables(results):
        echo("\n" + t)
    return results


if __name__ == "__main__":
    main()
