"""Memory: the services' peak RSS at the sustained rate (from end-to-end), and state per open interaction.

State per open interaction is measured on the real stage logic (``LocalPipeline``: the same
normalize + correlate partitions the faust worker runs) with a clock that never advances, so no
interaction times out or expires: each complete one is emitted and stays in state (packed,
stream_processors/correlate/packing.py) as it would until retention. The bytes its state would write to the changelogs (JSON values, as persisted)
and the Python heap it holds (tracemalloc, after dropping the emitted messages LocalPipeline
collects, which a worker hands to Kafka), each divided by the interactions in state; and the heap
of each part of the state (``heap_by_component``).
"""

from __future__ import annotations

import gc
import tracemalloc
from typing import Any

import orjson


def state_per_open_interaction(interactions: int = 5000) -> dict[str, Any]:
    """Changelog bytes and heap bytes per interaction held open by the correlate stage."""
    from gateledger.clock import ManualClock
    from benchmarks.processors import T0, raw_messages
    from stream_processors.local import LocalPipeline
    from stream_processors.settings import ProcessorSettings

    msgs = raw_messages(interactions, seed=5)
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    pl = LocalPipeline(settings=ProcessorSettings(idle_advance_s=0), clock=ManualClock(T0))
    pl.feed(msgs, flush_every=2000)
    # LocalPipeline keeps every emitted message; a worker hands them to Kafka: not state.
    pl.outputs.clear()
    gc.collect()
    heap = tracemalloc.get_traced_memory()[0] - before
    open_ = sum(c.open for c in pl.correlate)
    tracked = sum(1 for c in pl.correlate for k in c.state.kv if k.startswith("i|"))
    corr_bytes = sum(len(k) + len(orjson.dumps(v)) for c in pl.correlate for k, v in c.state.kv.items())
    norm_bytes = sum(len(k) + len(orjson.dumps(v)) for n in pl.normalize for k, v in n.state.kv.items())
    entries = {"correlate": sum(c.entries() for c in pl.correlate),
               "normalize": sum(len(n.state.kv) for n in pl.normalize)}
    components = heap_by_component(pl, max(tracked, 1))
    tracemalloc.stop()
    return {
        "interactions": interactions, "raw_events": len(msgs), "open_interactions": open_,
        "interactions_in_state": tracked,
        # Closed interactions stay in state until retention: the honest unit is bytes per tracked one.
        "correlate_state_bytes_per_interaction": round(corr_bytes / max(tracked, 1)),
        "normalize_state_bytes_per_interaction": round(norm_bytes / interactions),
        "heap_bytes_per_interaction": round(heap / max(tracked, 1)),
        # What each part frees when dropped (the rest: fixed costs spread over the interactions).
        "heap_bytes_per_interaction_by_component": components,
        "entries": entries,
    }


def heap_by_component(pl: Any, per: int) -> dict[str, int]:
    """Heap each part of the pipeline's state holds, per interaction: dropped one part at a time
    (tracemalloc running), the traced memory measured after each. Empties ``pl``'s state."""
    from stream_processors.common.dedup import DedupWindow

    def drop_kind(prefix: str) -> None:
        for n in pl.normalize:
            for k in [k for k in n.state.kv if k.startswith(prefix)]:
                del n.state.kv[k]

    def drop_correlate() -> None:
        for c in pl.correlate:
            c.state.kv.clear()
            c.timers.clear()

    def drop_timers() -> None:
        for n in pl.normalize:
            n._timers.clear()
            n._next_expiry.clear()

    def drop_dedup() -> None:
        drop_kind("d|")
        for n in pl.normalize:
            n.dedup = DedupWindow(n.dedup.window, n.dedup.bucket)

    parts = [("correlate", drop_correlate), ("normalize_timers", drop_timers),
             ("normalize_exchanges", lambda: drop_kind("m|")),
             ("normalize_contexts", lambda: drop_kind("c|")),
             ("normalize_dedup", drop_dedup), ("normalize_watermarks", lambda: drop_kind("w|"))]
    out: dict[str, int] = {}
    gc.collect()
    at = tracemalloc.get_traced_memory()[0]
    for name, drop in parts:
        drop()
        gc.collect()
        now = tracemalloc.get_traced_memory()[0]
        out[name] = round((at - now) / per)
        at = now
    return out


def run(interactions: int = 5000, max_interactions: int = 4000, paced_seconds: float = 15.0) -> dict[str, Any]:
    """Peak RSS per service at 90 % of the maximum rate, and state size per open interaction."""
    from benchmarks.end_to_end import run as e2e

    stack = e2e(max_interactions=max_interactions, fractions=(0.9,), paced_seconds=paced_seconds)
    return {
        "scenario": "memory",
        "sustained_rate_events_per_s": stack["paced"][0]["achieved_events_per_s"],
        "peak_rss_mib_at_90pct": stack["paced"][0]["peak_rss_mib"],
        "peak_rss_mib_at_max": stack["max"]["peak_rss_mib"],
        "state": state_per_open_interaction(interactions),
    }
