"""The whole pipeline under load: simulator -> HTTP ingest -> Kafka -> processors -> sink -> ClickHouse.

A real ``gateledger up`` runs (every service its own process). First the maximum: two simulators
send as fast as they can, and the sustained rate is the raw events that made it all the way
(raw events, processed outputs and interactions queryable) per second. Then a paced load
generator (the simulator at a fixed rate of interactions/s) drives the stack at 25 %, 50 % and
90 % of that maximum; the delay from an event's own time to the moment its row was inserted
(``inserted_at``, set by ClickHouse) is read back per row. The services' RSS is sampled meanwhile.
"""

from __future__ import annotations

import asyncio
import os
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

from benchmarks.stack import ServiceSampler, Stack

PROCESSED = ("mcp_calls", "llm_calls", "policy_decisions", "webhook_decisions")
ALL_TABLES = ("raw_events", *PROCESSED, "interactions")


def _ts(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


def _generate(rate: float, count: int, seed: int) -> tuple[list[Any], datetime]:
    """Every delivery of ``count`` interactions, generated before any clock starts.

    Event times begin at a start a little ahead of now (a pilot run sizes the lead), so the sender can
    hand each record over at its own delivery time and the generator's CPU stays out of the timed window."""
    from gateledger.clock import utcnow
    from producers.simulator.traffic import TrafficGenerator

    pilot_n = min(count, 200)
    t = time.perf_counter()
    pilot = TrafficGenerator(seed, utcnow(), tenants=3, rate=rate)
    while pilot.count < pilot_n:
        pilot.next()
    lead = 1.0 + 1.5 * (time.perf_counter() - t) * count / pilot_n
    start = utcnow() + timedelta(seconds=lead)
    gen = TrafficGenerator(seed, start, tenants=3, rate=rate)
    out: list[Any] = []
    while gen.count < count:
        out.extend(gen.next())
    out.extend(gen.drain())
    return out, start


async def _send(target: str, deliveries: list[Any], start: datetime, *, asap: bool = False,
                tick_s: float = 0.1) -> dict[str, Any]:
    """Hand pre-generated deliveries to the ingest service at their delivery times: due records every
    tick, each (format, tenant) group as one request and the groups concurrently. Behind schedule,
    batches grow. ``asap``: every delivery is due at once (the maximum)."""
    import aiohttp

    from gateledger.clock import utcnow
    from producers.simulator.deliver import Deliverer

    overrun = max(0.0, (utcnow() - start).total_seconds())
    wait = (start - utcnow()).total_seconds()
    if wait > 0:
        await asyncio.sleep(wait)
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=120)) as session:
        d = Deliverer(session, target, batch_size=500, concurrency=32)
        i = 0
        while i < len(deliveries):
            now = utcnow()
            j = i
            while j < len(deliveries) and (asap or deliveries[j].at <= now):
                j += 1
            if j == i:
                await asyncio.sleep(min(tick_s, max(0.0, (deliveries[i].at - now).total_seconds())))
                continue
            groups: dict[tuple[str, str], list[Any]] = {}
            for x in deliveries[i:j]:
                groups.setdefault((x.fmt, x.tenant), []).append(x)
            i = j
            t = time.monotonic()
            await asyncio.gather(*(d.send(g) for g in groups.values()))
            spare = tick_s - (time.monotonic() - t)
            if spare > 0:
                await asyncio.sleep(spare)
    return {"requests": d.stats.requests, "records": d.stats.records, "retries": d.stats.retries,
            "statuses": {str(k): v for k, v in sorted(d.stats.statuses.items())},
            "generation_overrun_s": round(overrun, 2)}


async def _counts(stack: Stack, since: float) -> tuple[int, float]:
    """Distinct events landed (all tables) since ``since``, and the latest insert time (epoch s)."""
    parts = " UNION ALL ".join(
        f"SELECT uniqExact(id) AS n, toFloat64(max(inserted_at)) AS last FROM $db.{t} WHERE time >= '{_ts(since)}'"
        for t in ALL_TABLES)
    rows = await stack.aquery(f"SELECT sum(n), max(last) FROM ({parts})")
    n, last = rows[0]
    return int(n), float(last or 0)


async def _quiesce(stack: Stack, since: float, still_s: float = 4.0, timeout_s: float = 900) -> tuple[int, float]:
    """Wait until nothing new lands for ``still_s``; the counts then."""
    deadline = time.monotonic() + timeout_s
    last_n, stable_since = -1, time.monotonic()
    while time.monotonic() < deadline:
        n, last = await _counts(stack, since)
        if n != last_n:
            last_n, stable_since = n, time.monotonic()
        elif time.monotonic() - stable_since >= still_s:
            return n, last
        await asyncio.sleep(1.0)
    raise RuntimeError("the pipeline did not go quiet")


async def _raw_count(stack: Stack, since: float, until: float | None = None) -> int:
    cond = f"time >= '{_ts(since)}'" + (f" AND time < '{_ts(until)}'" if until else "")
    return int((await stack.aquery(f"SELECT uniqExact(id) FROM $db.raw_events WHERE {cond}"))[0][0])


def _r(x: float) -> int | None:
    return None if x != x else round(x)


async def _quantiles(stack: Stack, inner: str) -> dict[str, int | None]:
    """p50 / p95 / p99 of column ``d`` over the subquery ``inner``, and its row count."""
    rows = await stack.aquery(f"SELECT quantiles(0.5, 0.95, 0.99)(d), count() FROM ({inner})")
    q, n = rows[0]
    qs = [float(x) if x is not None else float("nan") for x in (q or [None] * 3)]
    return {"p50": _r(qs[0]), "p95": _r(qs[1]), "p99": _r(qs[2]), "rows": int(n)}


async def _delays(stack: Stack, since: float, until: float) -> dict[str, dict[str, float | None]]:
    """Event time -> first landing (ms) per table group and per table, and for interactions the parts
    apart: after their last event (``end_time``), of which until the processors emitted the row
    (``emitted_at - end_time``: transport, processing and, for an interaction that never completes, the
    deliberate event-time wait) and from there to queryable (``inserted_at - emitted_at``: Kafka + sink)."""
    win = f"time >= '{_ts(since)}' AND time < '{_ts(until)}'"
    groups = {"raw_events": ("raw_events",), "processed": PROCESSED, "interactions": ("interactions",),
              **{t: (t,) for t in PROCESSED}}
    out: dict[str, dict[str, float | None]] = {}
    for name, tables in groups.items():
        inner = " UNION ALL ".join(
            f"SELECT dateDiff('millisecond', min(time), min(inserted_at)) AS d FROM $db.{t} WHERE {win} GROUP BY id"
            for t in tables)
        out[name] = await _quantiles(stack, inner)
    first = (f"SELECT argMin(end_time, inserted_at) AS e, argMin(emitted_at, inserted_at) AS m, "
             f"min(inserted_at) AS i FROM $db.interactions WHERE {win} GROUP BY id")
    for name, expr in (("interactions_after_last_event", "dateDiff('millisecond', e, i)"),
                       ("interactions_last_event_to_emitted", "dateDiff('millisecond', e, m)"),
                       ("interactions_emitted_to_queryable", "dateDiff('millisecond', m, i)")):
        out[name] = await _quantiles(stack, f"SELECT {expr} AS d FROM ({first})")
    rows = await stack.aquery("SELECT quantiles(0.5, 0.95, 0.99)(dateDiff('millisecond', time, received_at)) "
                              f"FROM $db.raw_events WHERE {win}")
    q = [float(x) if x is not None else float("nan") for x in (rows[0][0] or [None] * 3)]
    out["event_time_to_ingest"] = {"p50": _r(q[0]), "p95": _r(q[1]), "p99": _r(q[2])}
    return out


async def _steady(stack: Stack, since: float, t0: float, end: float, raw: int) -> dict[str, float]:
    """The processed rows landed per second in the middle of the maximum's window (20 %..80 % of it, no
    start-up, no tail), as raw events/s at this traffic's processed rows per raw event."""
    a, b = t0 + 0.2 * (end - t0), t0 + 0.8 * (end - t0)
    parts = " UNION ALL ".join(
        f"SELECT countIf(inserted_at >= '{_ts(a)}' AND inserted_at < '{_ts(b)}') AS w, count() AS n "
        f"FROM (SELECT min(inserted_at) AS inserted_at FROM $db.{t} WHERE time >= '{_ts(since)}' GROUP BY id)"
        for t in PROCESSED)
    w, n = (await stack.aquery(f"SELECT sum(w), sum(n) FROM ({parts})"))[0]
    per_raw = int(n) / raw if raw else 0.0
    rate = int(w) / (b - a) / per_raw if per_raw and b > a else 0.0
    return {"window_s": round(b - a, 2), "processed_rows_in_window": int(w),
            "processed_rows_per_raw_event": round(per_raw, 3), "events_per_s": round(rate)}


async def _last_inserts(stack: Stack, since: float) -> dict[str, float]:
    """The latest insert time (epoch s) per table group, for rows whose event time is after ``since``."""
    groups = {"raw_events": ("raw_events",), "processed": PROCESSED, "interactions": ("interactions",)}
    out = {}
    for name, tables in groups.items():
        parts = " UNION ALL ".join(
            f"SELECT toFloat64(max(inserted_at)) AS last FROM $db.{t} WHERE time >= '{_ts(since)}'" for t in tables)
        out[name] = float((await stack.aquery(f"SELECT max(last) FROM ({parts})"))[0][0] or 0)
    return out


def _deliberate_waits() -> dict[str, float]:
    """The processors' event-time waits (by design, not transport): reported beside every delay."""
    from stream_processors.settings import ProcessorSettings

    s = ProcessorSettings()
    return {"idle_advance_s": s.idle_advance_s, "lateness_s": s.lateness_s}


async def _run(max_interactions: int, fractions: tuple[float, ...], paced_seconds: float) -> dict[str, Any]:
    result: dict[str, Any] = {"scenario": "end-to-end", "deliberate_waits": _deliberate_waits()}
    with Stack() as stack:
        target = stack.state.ingest_url
        await asyncio.sleep(2)  # let the consumers settle into their groups
        # -- the maximum: everything generated first, then sent as fast as ingest takes it ---------
        deliveries, gen_start = await asyncio.to_thread(_generate, 100_000.0, max_interactions, 101)
        stop = asyncio.Event()
        sampler = ServiceSampler(stack)
        sampling = asyncio.create_task(sampler.run(stop))
        t0 = time.time()
        sent_max = await _send(target, deliveries, gen_start, asap=True)
        t_sent = time.time()
        n_all, last = await _quiesce(stack, t0 - 3600)
        stop.set()
        services = await sampling
        lasts = await _last_inserts(stack, t0 - 3600)
        raw = await _raw_count(stack, t0 - 3600)
        per_interaction = raw / max_interactions
        # Processing ends when the raw and processed rows have landed; interactions close on event-time
        # waits by design (deliberate_waits), so their landing is reported apart, not in the rate.
        processed_end = max(lasts["raw_events"], lasts["processed"], t_sent) - t0
        elapsed = max(last, t_sent) - t0
        max_eps = raw / processed_end
        steady = await _steady(stack, t0 - 3600, t0, t0 + processed_end, raw)
        result["max"] = {"interactions": max_interactions, "raw_events": raw, "rows_landed": n_all,
                         "raw_events_per_interaction": round(per_interaction, 2),
                         "ingest_seconds": round(t_sent - t0, 2),
                         "processed_seconds": round(processed_end, 2),
                         "end_to_end_seconds": round(elapsed, 2),
                         "interactions_landed_after_s": round(lasts["interactions"] - t0, 2),
                         "ingest_events_per_s": round(raw / (t_sent - t0)),
                         "sustained_events_per_s": round(max_eps),
                         "steady_state": steady, "steady_state_events_per_s": steady["events_per_s"],
                         "all_outputs_events_per_s": round(raw / elapsed),
                         "peak_rss_mib": services["peak_rss_mib"], "cpu": services, "load": sent_max}
        # -- paced -----------------------------------------------------------------------------
        result["paced"] = []
        for k, f in enumerate(fractions):
            rate_i = max(0.5, f * max_eps / per_interaction)
            count = max(10, int(rate_i * paced_seconds))
            deliveries, gen_start = await asyncio.to_thread(_generate, rate_i, count, 300 + k)
            stop = asyncio.Event()
            sampler = ServiceSampler(stack)
            sampling = asyncio.create_task(sampler.run(stop))
            since = gen_start.timestamp()
            sent_stats = await _send(target, deliveries, gen_start)
            sent = time.time()
            await _quiesce(stack, since)
            stop.set()
            services = await sampling
            end = time.time()
            landed = await _raw_count(stack, since, end)
            result["paced"].append({
                "fraction": f, "target_events_per_s": round(rate_i * per_interaction),
                "interactions_per_s": round(rate_i, 2), "interactions": count, "load": sent_stats,
                "achieved_events_per_s": round(landed / (sent - since)), "raw_events": landed,
                "delay_ms": await _delays(stack, since, end), "peak_rss_mib": services["peak_rss_mib"],
                "cpu": services,
            })
        result["state_entries_hint"] = "see the memory scenario for state size per open interaction"
    return result


def run(max_interactions: int = 6000, fractions: tuple[float, ...] = (0.25, 0.5, 0.9),
        paced_seconds: float = 20.0) -> dict[str, Any]:
    """Sustained events/s at the maximum and the event-time -> queryable delay at fractions of it."""
    os.environ.pop("GATELEDGER_DATA_DIR", None)
    return asyncio.run(_run(max_interactions, fractions, paced_seconds))
