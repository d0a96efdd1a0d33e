"""Traffic cut in two around a worker upgrade, and the state the older layout left at the cut.

``python tests/stream_processors/normalize/upgrade_traffic.py OUT.json`` with the older code first on
the path (``PYTHONPATH=<checkout of a4cc686>`` with today's ``tests/`` and ``producers/simulator/`` copied
into it: the traffic is today's, the state layout the older code's) wrote ``state_before_compact.json``:
the normalize and correlate state of a LocalPipeline after the first half (then 120 s of idle time, so lone halves
timed out), as the changelog holds it (JSON). ``test_records.py`` loads it into today's code.
"""

from __future__ import annotations

import random
import sys
from datetime import timedelta
from typing import Any

import orjson

from gateledger.clock import ManualClock
from gateledger.topics import topic_name
from stream_processors.local import LocalPipeline
from stream_processors.settings import ProcessorSettings
from tests.stream_processors import traffic
from tests.stream_processors.traffic import T0, Spec

PAUSE_S = 120  # event time the first half is left to run on (lone halves time out: merge timeout 60 s)


def messages() -> tuple[list[tuple[str, bytes, bytes]], int]:
    """All messages (some swapped with their neighbour, some delivered twice at the end) and the cut."""
    specs = traffic.mixed(40, seed=12) + [
        Spec(n=200 + i, t0=T0 + timedelta(seconds=3 + i), trail=True, tenant=("acme", "globex")[i % 2])
        for i in range(4)]
    evs = traffic.events_in_time_order(specs)
    rng = random.Random(5)
    for i in range(0, len(evs) - 1, 3):
        if rng.random() < 0.5:
            evs[i], evs[i + 1] = evs[i + 1], evs[i]
    cut = len(evs) // 2
    evs += [evs[i] for i in rng.sample(range(cut), 8)]  # duplicates of events before the cut
    msgs = [(topic_name(p.topic, ""), p.key.encode(), p.envelope.model_dump_json(exclude_none=True).encode())
            for p in evs]
    return msgs, cut


def pipeline() -> LocalPipeline:
    return LocalPipeline(settings=ProcessorSettings(idle_advance_s=1, lateness_s=1), clock=ManualClock(T0))


def first_half(pl: LocalPipeline) -> None:
    """Feed the first half, then let the clock run ``PAUSE_S`` (idle advance)."""
    msgs, cut = messages()
    pl.feed(msgs[:cut])
    pl.clock.advance(seconds=PAUSE_S)  # type: ignore[attr-defined]
    pl.tick()


def second_half(pl: LocalPipeline) -> None:
    msgs, cut = messages()
    pl.feed(msgs[cut:])


def dump(pl: LocalPipeline) -> dict[str, Any]:
    """Each partition's state as the changelog holds it (JSON)."""
    return orjson.loads(orjson.dumps({
        "normalize": [sorted(p.state.kv.items()) for p in pl.normalize],
        "correlate": [sorted(p.state.kv.items()) for p in pl.correlate],
        "offsets": [[t, p, o] for (t, p), o in sorted(pl.offsets.items())],
    }))


if __name__ == "__main__":
    pl = pipeline()
    first_half(pl)
    with open(sys.argv[1], "wb") as f:
        f.write(orjson.dumps(dump(pl), option=orjson.OPT_INDENT_2) + b"\n")
