"""Soak: the whole embedded stack at a steady rate for minutes, memory and CPU of every service sampled.

A real ``gateledger up`` runs (every service its own process) while the simulator's traffic is sent
at a fixed rate of raw events/s, a few seconds ahead at a time. Every ``every_s`` seconds each
service's RSS and the CPU seconds it has used are read from /proc. After a warm-up, a straight line
is fitted to each service's RSS: its slope is the growth rate, expressed per 10 minutes as a share
of the service's mean RSS, and extrapolated to 7 days at the same rate. The processors' retention
windows can be shortened (``retention_s``) so that a short soak reaches the plateau a long-running
stack would reach after its windows fill.

With shortened windows the processors' plateau is lower than a real stack's: at the window
``gateledger up`` gives them (``GATELEDGER_STACK_PROCESSORS_WINDOW_S``, 2 h) it is reached after that
long and holds every interaction of it. ``at_full_retention`` adds, to the processors' level (the mean
of their last stretch), the interactions a full window holds beyond the shortened one times the
Python heap each one holds in state (``benchmarks.memory``, measured on the real stage logic), and to
it every other service's 7 days: its last stretch's line extended to a week, never below its peak
(``week_mib``; a recycled broker's is its peak, the recycle bound); ``at_24h_retention`` does the same
at the processors' own default window (24 h). Heap is a lower bound of RSS (allocator slack comes on
top).

Once a minute the raw events landed in ClickHouse are counted, so the result says whether the stack
held the rate (sent and landed per second after the warm-up, and the backlog). A broker recycle
restarts every service, so besides the one line over the whole soak each stretch a process lived
(one pid) gets its own line after its own warm-up; a recycled service's bound is its peak.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from benchmarks.end_to_end import _send
from benchmarks.stack import ServiceSampler, Stack

WEEK_S = 7 * 86400.0


def events_per_interaction(seed: int = 7, n: int = 400) -> float:
    """Mean raw records per simulated interaction (to turn events/s into the simulator's rate)."""
    from gateledger.clock import utcnow
    from producers.simulator.traffic import TrafficGenerator

    gen = TrafficGenerator(seed, utcnow(), tenants=3, rate=50.0)
    records = 0
    while gen.count < n:
        records += len(gen.next())
    return (records + len(gen.drain())) / n


def fit(series: list[dict[str, Any]], warmup_s: float) -> dict[str, dict[str, float | None]]:
    """Per process: least-squares RSS slope after the warm-up, growth per 10 min, 7-day extrapolation."""
    out: dict[str, dict[str, float | None]] = {}
    names = series[0]["rss_mib"].keys() if series else []
    for name in names:
        pts = [(s["t"], s["rss_mib"][name]) for s in series if s["t"] >= warmup_s and s["rss_mib"][name] > 0]
        if len(pts) < 3:
            out[name] = {"samples": len(pts), "slope_mib_per_min": None, "growth_pct_per_10min": None,
                         "mean_mib": None, "last_mib": None, "peak_mib": None,
                         "extrapolated_7d_mib": None}
            continue
        ts, rs = [p[0] for p in pts], [p[1] for p in pts]
        slope, _ = statistics.linear_regression(ts, rs)
        mean = statistics.fmean(rs)
        last_t, last = pts[-1]
        out[name] = {
            "samples": len(pts),
            "slope_mib_per_min": round(slope * 60, 3),
            "growth_pct_per_10min": round(slope * 600 / mean * 100, 2) if mean else None,
            "mean_mib": round(mean, 1),
            "last_mib": last,
            # A recycled broker (and every service it restarts) saw-tooths: its peak is its bound.
            "peak_mib": max(rs),
            # A negative slope (memory returned) does not shrink the week below what is held now.
            "extrapolated_7d_mib": round(last + max(0.0, slope) * (WEEK_S - last_t), 1),
        }
    return out


async def _landed(stack: Stack) -> int | None:
    """Raw event rows in ClickHouse now (None while the sink cannot answer, e.g. during a recycle)."""
    try:
        # Bounded: the load must keep its pace while the sink is slow to answer.
        return int((await asyncio.wait_for(stack.aquery("SELECT count() FROM $db.raw_events"), 20))[0][0])
    except Exception:  # a progress figure only: the soak goes on without it
        return None


# What the sink's embedded ClickHouse holds, read once a minute: whether growth of the sink's RSS is
# ClickHouse's (tracked memory, caches, parts and their in-memory primary keys) or the Python side's.
SINK_PROBES = {
    "metrics": "SELECT metric, value FROM system.metrics WHERE metric = 'MemoryTracking'"
               " OR (metric LIKE '%Cache%Bytes%' AND value != 0)",
    "parts": "SELECT count(), sum(rows), sum(primary_key_bytes_in_memory_allocated), sum(bytes_on_disk)"
             " FROM system.parts WHERE active",
    "merges": "SELECT count() FROM system.merges",
}


async def _sink_probe(stack: Stack) -> dict[str, Any] | None:
    """ClickHouse's own memory figures in the sink (None while the sink cannot answer)."""
    try:
        metrics = {str(k): int(v) for k, v in await asyncio.wait_for(stack.aquery(SINK_PROBES["metrics"]), 20)}
        parts, rows, pk, disk = (await asyncio.wait_for(stack.aquery(SINK_PROBES["parts"]), 20))[0]
        merges = (await asyncio.wait_for(stack.aquery(SINK_PROBES["merges"]), 20))[0][0]
    except Exception:  # a diagnostic only: the soak goes on without it
        return None
    return {"metrics": metrics, "active_parts": int(parts), "rows": int(rows), "pk_bytes": int(pk),
            "disk_bytes": int(disk), "merges": int(merges)}


def keeping_up(landing: list[dict[str, Any]], warmup_s: float) -> dict[str, float | None]:
    """Raw events/s sent and landed after the warm-up; the backlog (sent, not landed) then and at the end."""
    pts = [p for p in landing if p["t"] >= warmup_s and p["landed"] is not None]
    if len(pts) < 2:
        return {"sent_per_s": None, "landed_per_s": None, "backlog_at_warmup": None, "backlog_at_end": None}
    a, b = pts[0], pts[-1]
    dt = b["t"] - a["t"]
    return {"sent_per_s": round((b["sent"] - a["sent"]) / dt, 1),
            "landed_per_s": round((b["landed"] - a["landed"]) / dt, 1),
            "backlog_at_warmup": a["sent"] - a["landed"], "backlog_at_end": b["sent"] - b["landed"]}


def sink_minutes(landing: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per minute: raw events sent and landed, the sink's CPU seconds and its CPU per landed raw event.

    Whether the sink keeps up, and what each landed event costs it, minute by minute: a recycle's
    drain lets a sink that fell behind catch up (the ingest refuses meanwhile), so the totals alone
    hide when it began to fall behind; CPU per landed event, unlike a rate, hardly depends on what
    else runs on the machine.
    """
    out = []
    for a, b in zip(landing, landing[1:], strict=False):
        if a.get("landed") is None or b.get("landed") is None or b.get("sink_cpu_s") is None \
                or a.get("sink_cpu_s") is None:
            continue
        landed = b["landed"] - a["landed"]
        cpu = b["sink_cpu_s"] - a["sink_cpu_s"]
        out.append({"minute": round(b["t"] / 60, 1), "sent": b["sent"] - a["sent"], "landed": landed,
                    "backlog": b["sent"] - b["landed"], "sink_cpu_s": round(cpu, 1),
                    "ms_per_landed": round(1000 * cpu / landed, 2) if landed > 0 else None,
                    "restarted": a.get("sink_pid") != b.get("sink_pid"), "load_1m": b.get("load_1m")})
    return out


def fit_segments(series: list[dict[str, Any]], warmup_s: float,
                 min_s: float = 180.0, key: str = "rss_mib") -> dict[str, list[dict[str, Any]]]:
    """Per process, one growth line per stretch its pid lived (a broker recycle restarts every service).

    A recycled stack saw-tooths, so one line over the whole soak says nothing; each stretch gets its
    own warm-up (``warmup_s`` from its first sample) and is fitted if at least ``min_s`` remains.
    ``key``: which memory figure of the samples (``anon_mib``: RSS not backed by a file)."""
    out: dict[str, list[dict[str, Any]]] = {}
    names = series[0]["rss_mib"].keys() if series else []
    for name in names:
        runs: list[list[dict[str, Any]]] = []
        for s in series:
            pid = s.get("pid", {}).get(name)
            if not runs or runs[-1][0].get("pid", {}).get(name) != pid:
                runs.append([])
            runs[-1].append(s)
        out[name] = []
        for run in runs:
            start = run[0]["t"]
            pts = [(s["t"], s[key][name]) for s in run
                   if s["t"] >= start + warmup_s and s.get(key, {}).get(name, 0) > 0]
            if len(pts) < 3 or pts[-1][0] - pts[0][0] < min_s:
                continue
            ts, rs = [p[0] for p in pts], [p[1] for p in pts]
            slope, _ = statistics.linear_regression(ts, rs)
            mean = statistics.fmean(rs)
            out[name].append({"from_min": round(ts[0] / 60, 1), "to_min": round(ts[-1] / 60, 1),
                              "samples": len(pts), "first_mib": rs[0], "last_mib": rs[-1],
                              "mean_mib": round(mean, 1), "peak_mib": max(rs),
                              "slope_mib_per_min": round(slope * 60, 3),
                              "growth_pct_per_10min": round(slope * 600 / mean * 100, 2)})
    return out


def week_mib(result: dict[str, Any], name: str) -> float | None:
    """A service's MiB after 7 days at the soak's rate: its last stretch's line (a broker recycle
    restarts every service, so the whole-soak line fits a saw-tooth), never below its peak; a
    recycled broker's bound is its peak (the recycle keeps it there)."""
    segs = (result.get("segments") or {}).get(name) or []
    g = result["growth"].get(name) or {}
    if not segs:
        return g.get("extrapolated_7d_mib")
    peak = max(s["peak_mib"] for s in segs)
    if name == "broker" and result.get("broker_recycles"):
        return peak
    last = segs[-1]
    return round(max(peak, last["last_mib"] + max(0.0, last["slope_mib_per_min"]) / 60
                     * (WEEK_S - last["to_min"] * 60)), 1)


def at_full_retention(result: dict[str, Any], heap_bytes_per_interaction: float,
                      retention_s: float = 86400.0) -> dict[str, float | None]:
    """The processors' plateau and the whole stack's 7-day MiB had the soak run with ``retention_s``."""
    proc = result["growth"].get("processors") or {}
    segs = (result.get("segments") or {}).get("processors") or []
    level = segs[-1]["mean_mib"] if segs else proc.get("mean_mib")
    short = result.get("retention_s") or retention_s
    extra = result["interactions_per_s"] * max(0.0, retention_s - short) * heap_bytes_per_interaction / 2**20
    plateau = None if level is None else round(level + extra, 1)
    week = [week_mib(result, k) for k in result["growth"] if k not in ("load generator", "processors")]
    stack = None if plateau is None or any(w is None for w in week) else round(sum(week) + plateau, 1)
    return {"retention_s": retention_s, "heap_bytes_per_interaction": heap_bytes_per_interaction,
            "processors_plateau_mib": plateau, "stack_7d_mib": stack}


def plot(series: list[dict[str, Any]], path: Path, title: str) -> None:
    """RSS and CPU cores used per process over time, as a PNG."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    names = list(series[0]["rss_mib"]) if series else []
    fig, (ax1, ax2) = plt.subplots(2, 1, figsize=(10, 7), sharex=True)
    ts = [s["t"] / 60 for s in series]
    for name in names:
        ax1.plot(ts, [s["rss_mib"][name] for s in series], label=name)
        cores = [0.0] + [
            (b["cpu_s"][name] - a["cpu_s"][name]) / (b["t"] - a["t"]) if b["t"] > a["t"] else 0.0
            for a, b in zip(series, series[1:], strict=False)
        ]
        ax2.plot(ts, cores, label=name)
    ax1.set_ylabel("RSS (MiB)")
    ax1.legend(loc="upper left")
    ax1.set_title(title)
    ax2.set_ylabel("CPU (cores)")
    ax2.set_xlabel("minutes")
    ax2.legend(loc="upper left")
    fig.tight_layout()
    fig.savefig(path, dpi=90)
    plt.close(fig)


async def _soak(minutes: float, rate: float, every_s: float, warmup_min: float, retention_s: float | None,
                seed: int, echo: Any, broker_recycle_mib: float | None = None) -> dict[str, Any]:
    from gateledger.clock import utcnow
    from producers.simulator.traffic import TrafficGenerator

    per_interaction = events_per_interaction()
    rate_i = rate / per_interaction
    env = {}
    if retention_s is not None:
        env["GATELEDGER_PROCESSORS_RETENTION_S"] = str(retention_s)
        # The dedup window (24 h by default) holds event ids as long: shortened alike (its expiry bucket
        # follows the window: stream_processors/common/timeutil.py).
        env["GATELEDGER_PROCESSORS_DEDUP_WINDOW_S"] = str(retention_s)
    if broker_recycle_mib is not None:
        # The broker's memory bound (gateledger/stack/recycle.py), low enough to be reached in the soak.
        env["GATELEDGER_STACK_BROKER_RECYCLE_RSS_MIB"] = str(broker_recycle_mib)
        env["GATELEDGER_STACK_BROKER_RECYCLE_MIN_UPTIME_S"] = "60"
    result: dict[str, Any] = {"scenario": "soak", "minutes": minutes, "target_events_per_s": rate,
                              "interactions_per_s": round(rate_i, 2), "raw_events_per_interaction":
                                  round(per_interaction, 2), "retention_s": retention_s, "every_s": every_s,
                              "warmup_min": warmup_min, "broker_recycle_mib": broker_recycle_mib}
    with Stack(extra_env=env) as stack:
        await asyncio.sleep(2)  # let the consumers settle into their groups
        sampler = ServiceSampler(stack, keep_series=True)
        stop = asyncio.Event()
        sampling = asyncio.create_task(sampler.run(stop, every_s))
        gen = TrafficGenerator(seed, utcnow() + timedelta(seconds=1), tenants=3, rate=rate_i)
        t0 = time.monotonic()
        end = t0 + minutes * 60
        sent = retries = 0
        landing: list[dict[str, Any]] = []  # sent and landed once a minute: does the sink keep up?
        next_report = t0 + 60
        while time.monotonic() < end:
            # A few seconds of traffic at a time: generated, then handed over at its delivery times.
            horizon = utcnow() + timedelta(seconds=5)
            chunk: list[Any] = []
            while gen.start + gen.spacing * gen.count < horizon:
                chunk.extend(gen.next())
            if chunk:
                stats = await _send(stack.state.ingest_url, chunk, chunk[0].at)
                sent += stats["records"]
                retries += stats["retries"]
            if time.monotonic() >= next_report:
                row = sampler.series[-1] if sampler.series else {}
                landed = await _landed(stack)
                probe = await _sink_probe(stack)
                landing.append({"t": round(time.monotonic() - t0, 1), "sent": sent, "landed": landed,
                                "sink_probe": probe, "sink_cpu_s": row.get("cpu_s", {}).get("sink"),
                                "sink_pid": row.get("pid", {}).get("sink"), "load_1m": os.getloadavg()[0]})
                echo(f"  soak {int((time.monotonic() - t0) / 60)}/{minutes:g} min: {sent:,} records sent, "
                     f"{landed if landed is not None else '?'} landed; RSS MiB "
                     + ", ".join(f"{k} {v}" for k, v in row.get("rss_mib", {}).items())
                     + (f"; chDB tracked {probe['metrics'].get('MemoryTracking', 0) / 2**20:.0f} MiB,"
                        f" {probe['active_parts']} parts" if probe else ""))
                next_report += 60
        stop.set()
        summary = await sampling
        elapsed = time.monotonic() - t0
        landed = int((await stack.aquery("SELECT uniqExact(id) FROM $db.raw_events"))[0][0])
        recycles = (stack.dir / "up.log").read_text().count("broker recycled (")
    growth = fit(sampler.series, warmup_min * 60)
    result["landing"] = landing
    result["segments"] = fit_segments(sampler.series, warmup_min * 60)
    result["segments_anon"] = fit_segments(sampler.series, warmup_min * 60, key="anon_mib")
    result["landing_after_warmup"] = keeping_up(landing, warmup_min * 60)
    result["sink_minutes"] = sink_minutes(landing)
    services = [k for k in growth if k != "load generator"]
    week = [growth[k]["extrapolated_7d_mib"] for k in services]
    result.update({
        "records_sent": sent, "retries": retries, "raw_events_landed": landed, "broker_recycles": recycles,
        "service_restarts": sampler.restarts,
        "achieved_events_per_s": round(sent / elapsed), "elapsed_s": round(elapsed, 1),
        "cpu": summary, "growth": growth,
        "stack_extrapolated_7d_mib": round(sum(w for w in week if w is not None), 1) if all(
            w is not None for w in week) else None,
        "series": sampler.series,
    })
    from benchmarks.memory import state_per_open_interaction

    from gateledger.settings import StackSettings

    heap = state_per_open_interaction(2000)["heap_bytes_per_interaction"]
    # At the window `gateledger up` gives its processors, and at the processors' own default (24 h).
    result["at_full_retention"] = at_full_retention(
        result, heap, StackSettings.model_fields["processors_window_s"].default)
    result["at_24h_retention"] = at_full_retention(result, heap)
    return result


def run(minutes: float = 30.0, rate: float = 300.0, every_s: float = 5.0, warmup_min: float = 5.0,
        retention_s: float | None = None, seed: int = 11, png: str | None = None,
        broker_recycle_mib: float | None = None) -> dict[str, Any]:
    """RSS and CPU of every service over a steady-rate run, with fitted growth and a 7-day extrapolation."""
    os.environ.pop("GATELEDGER_DATA_DIR", None)
    result = asyncio.run(_soak(minutes, rate, every_s, warmup_min, retention_s, seed, print, broker_recycle_mib))
    if png:
        plot(result["series"], Path(png), f"soak: {rate:g} raw events/s for {minutes:g} min")
        result["png"] = png
    return result


def table_rows(result: dict[str, Any]) -> list[list[Any]]:
    """One row per process: mean and last RSS, growth, 7-day extrapolation, CPU cores used."""
    rows = []
    cores = result["cpu"]["cpu_cores_used"]
    for name, g in result["growth"].items():
        rows.append([name, g["mean_mib"], g.get("peak_mib"), g["last_mib"], g["slope_mib_per_min"],
                     g["growth_pct_per_10min"],
                     g["extrapolated_7d_mib"], cores.get(name)])
    return rows
