"""Throughput of the processing stages (events/s on one worker), callable by the benchmark suite.

Two measurements over the same traffic, the simulator's (producers/simulator: AxonFlow pre-checks and
audits, custom-gateway CloudEvents, Obot MCP sessions with calls as request/response halves or whole
records, webhook-filter deliveries, Obot LLM logs), each record through its real format:

- ``bench_logic``: the pure stage logic (normalize + correlate, in-process, no Kafka): the ceiling.
- ``bench_worker``: one real ``gateledger serve processors`` worker on a Tansu broker, with every
  output produced and acknowledged and state written to changelogs; the raw topics are filled
  first, then the clock runs from "worker ready" until it has consumed every raw event and every
  fact it produced (normalize + correlate), and on until cost and budgets consumed everything the
  earlier stages produced for them (the full pipeline). The worker's CPU seconds (/proc) are
  recorded too: events per CPU second is what the code costs, even on a shared machine.

Both return plain dicts (JSON-able) so ``gateledger bench processors`` and the benchmark issue can
record them.
"""

from __future__ import annotations

import asyncio
import os
import statistics
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from typing import Any

from benchmarks import worker as worker_on
from gateledger.masking import Masker
from gateledger.topics import topic_name
from producers.accept import Published
from producers.simulator import simulate
from producers.simulator.envelopes import published

T0 = datetime(2026, 1, 5, 9, 0, tzinfo=UTC)
MASKER = Masker(salt=b"bench")


# -- traffic: the simulator's, through the real formats --------------------------------------------


def traffic(interactions: int, seed: int = 1, rate_per_s: float = 200.0) -> Iterator[Published]:
    """The envelopes of ``interactions`` simulated interactions (producers/simulator), in delivery order."""
    sim = simulate(interactions, seed=seed, start=T0, rate=rate_per_s)
    return published(sim.deliveries, MASKER)


def raw_messages(interactions: int, seed: int = 1, prefix: str = "") -> list[tuple[str, bytes, bytes]]:
    """The traffic as (physical topic, key, value) messages."""
    return [(topic_name(p.topic, prefix), p.key.encode(), p.envelope.model_dump_json(exclude_none=True).encode())
            for p in traffic(interactions, seed)]


# -- the pure logic ---------------------------------------------------------------------------------


def bench_logic(interactions: int = 20_000, runs: int = 3, seed: int = 1) -> dict[str, Any]:
    """Events/s of normalize + correlate in-process (no Kafka, no faust): the logic's ceiling."""
    from gateledger.clock import ManualClock
    from stream_processors.local import LocalPipeline
    from stream_processors.settings import ProcessorSettings

    msgs = raw_messages(interactions, seed)
    rates = []
    facts = outputs = 0
    for _ in range(runs):
        pl = LocalPipeline(settings=ProcessorSettings(idle_advance_s=0), clock=ManualClock(T0))
        started = time.perf_counter()
        pl.feed(msgs, flush_every=2000)
        elapsed = time.perf_counter() - started
        rates.append(len(msgs) / elapsed)
        facts, outputs = pl.facts, len(pl.outputs)
    return {
        "benchmark": "processors.logic",
        "events": len(msgs),
        "interactions": interactions,
        "runs": runs,
        "events_per_s_median": round(statistics.median(rates)),
        "events_per_s_runs": [round(r) for r in rates],
        "facts": facts,
        "outputs": outputs,
    }


# -- one real worker on a broker --------------------------------------------------------------------


def bench_worker(interactions: int = 5_000, runs: int = 3, seed: int = 1, bootstrap: str | None = None,
                 timeout_s: float = 600.0, env: dict[str, str] | None = None) -> dict[str, Any]:
    """Events/s of one ``gateledger serve processors`` worker (Kafka in and out, state in changelogs)."""
    measured: list[dict[str, float]] = []
    events = 0
    with worker_on.broker(bootstrap) as (bootstrap, own):
        for run in range(runs):
            tag = f"bench{os.getpid()}r{run}x{int(time.time())}"
            msgs = raw_messages(interactions, seed + run, prefix=f"{tag}.")
            events = len(msgs)
            asyncio.run(worker_on.publish(bootstrap, f"{tag}.", msgs))
            with worker_on.worker(bootstrap, tag, own_broker=own, env=env) as (port, proc, log):
                measured.append(worker_on.measure(port, proc, timeout_s, log, _all_consumed(events),
                                                  near=_near(events)))

    def median_rate(key: str) -> int:
        return round(statistics.median(events / m[key] for m in measured))

    return {
        "benchmark": "processors.worker",
        "events": events,
        "interactions": interactions,
        "runs": runs,
        # normalize + correlate (the figure of earlier runs), then the full pipeline (+ cost, budgets)
        "events_per_s_median": median_rate("correlate_s"),
        "events_per_s_runs": [round(events / m["correlate_s"]) for m in measured],
        "seconds_runs": [round(m["correlate_s"], 2) for m in measured],
        "events_per_cpu_s_median": median_rate("correlate_cpu_s"),
        "pipeline_events_per_s_median": median_rate("pipeline_s"),
        "pipeline_seconds_runs": [round(m["pipeline_s"], 2) for m in measured],
        # per CPU second of the worker: what the code costs, whatever else the machine runs
        "pipeline_events_per_cpu_s_median": median_rate("pipeline_cpu_s"),
        "pipeline_cpu_seconds_runs": [round(m["pipeline_cpu_s"], 2) for m in measured],
        "broker": "tansu (embedded)" if own else bootstrap,
        "cpu_count": os.cpu_count(),
    }


def _progress(text: str, events: int) -> tuple[bool, bool]:
    """(normalize + correlate done, every stage done) from one /metrics scrape.

    A stage is done when it consumed at least what the stages before it produced for it: the raw
    events; the facts; the ``llm.calls`` and ``mcp.calls`` rows (cost); ``cost.ledger`` (budget
    fan-out); the budget contributions (budgets).
    """
    def out(topic: str) -> float:
        return worker_on.metric(text, "gateledger_processor_events_out_total", topic=topic)

    def into(stage: str) -> float:
        return worker_on.metric(text, "gateledger_processor_events_in_total", stage=stage)

    correlated = into("normalize") >= events and into("correlate") >= out("facts")
    return correlated, (correlated and into("cost") >= out("llm.calls") + out("mcp.calls")
                        and into("budget-fanout") >= out("cost.ledger")
                        and into("budgets") >= out("budget-contributions"))


def _all_consumed(events: int) -> Callable[[str, float, float], dict[str, float] | None]:
    """Seconds and worker CPU seconds from "ready" until normalize + correlate, then every stage, consumed
    everything the raw events led to."""
    result: dict[str, float] = {}

    def done(text: str, elapsed: float, cpu: float) -> dict[str, float] | None:
        correlated, finished = _progress(text, events)
        if correlated and "correlate_s" not in result:
            result.update(correlate_s=elapsed, correlate_cpu_s=cpu)
        return result | {"pipeline_s": elapsed, "pipeline_cpu_s": cpu} if finished else None

    return done


def _near(events: int) -> Callable[[str], bool]:
    """Whether normalize has seen 90 % of the raw events (time to scrape often)."""
    return lambda text: worker_on.metric(text, "gateledger_processor_events_in_total",
                                         stage="normalize") >= 0.9 * events


def run(interactions: int = 5_000, runs: int = 3, logic_only: bool = False) -> dict[str, Any]:
    """Both measurements (or only the logic's), as one dict."""
    result: dict[str, Any] = {"logic": bench_logic(max(interactions, 5_000), runs)}
    if not logic_only:
        result["worker"] = bench_worker(interactions, runs)
    return result
