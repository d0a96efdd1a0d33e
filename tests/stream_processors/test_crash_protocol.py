"""Property: crashing at any point of the flush protocol and replaying gives the same final outputs.

A model of the worker without Kafka: per partition, a batch's outputs are produced first, then a
*prefix* of its state writes reaches the changelog (a crash may cut it anywhere), then offsets are
committed. After a crash the stage logic is rebuilt from the changelog (serialized, as faust would
recover it) and the uncommitted messages are replayed. Hypothesis picks the traffic, duplicates,
batch sizes, crash points and how much of the last flush survived.
"""

from __future__ import annotations

import random
from datetime import timedelta
from typing import Any

import orjson
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from gateledger.clock import ManualClock
from gateledger.masking import Masker
from gateledger.topics import Topic
from stream_processors.common.partitioning import partition_for
from stream_processors.correlate.stage import CorrelatePartition
from stream_processors.normalize.stage import FACTS, NormalizePartition, RawTopics
from stream_processors.settings import ProcessorSettings
from tests.stream_processors import traffic
from tests.stream_processors.test_logic import raw
from tests.stream_processors.traffic import T0

PARTS = 2
WALL = {"emitted_at", "detected_at"}
SETTINGS = ProcessorSettings(idle_advance_s=1, lateness_s=1, mcp_merge_timeout_s=600)


class Worker:
    """Both stages over PARTS partitions, with a changelog, committed offsets and crashes."""

    def __init__(self, messages: list[tuple[str, bytes, bytes]]) -> None:
        self.clock = ManualClock(T0)
        self.topics = RawTopics.with_prefix("")
        self.raw: list[list[tuple[str, int, bytes]]] = [[] for _ in range(PARTS)]
        offsets: dict[tuple[str, int], int] = {}
        for topic, key, value in messages:
            p = partition_for(key, PARTS)
            off = offsets.get((topic, p), 0)
            offsets[(topic, p)] = off + 1
            self.raw[p].append((topic, off, value))
        self.facts: list[list[Any]] = [[] for _ in range(PARTS)]
        self.committed = {("n", p): 0 for p in range(PARTS)} | {("c", p): 0 for p in range(PARTS)}
        self.changelog: dict[tuple[str, int, str], bytes] = {}
        self.outputs: list[dict[str, Any]] = []
        self.crashes = 0
        self.start()

    def start(self) -> None:
        masker = Masker(salt=b"t")
        self.n = [NormalizePartition(p, SETTINGS, self.topics, masker, self.clock) for p in range(PARTS)]
        self.c = [CorrelatePartition(p, SETTINGS, self.clock) for p in range(PARTS)]
        for (stage, p, key), value in sorted(self.changelog.items()):
            (self.n if stage == "n" else self.c)[p].load([(key, orjson.loads(value))])
        self.pos = dict(self.committed)

    def _finish(self, stage: str, logic: Any, end: int, crash: float | None) -> bool:
        for e in logic.out.emits:
            if e.topic == FACTS:
                self.facts[partition_for(e.key.encode(), PARTS)].append(e.obj)
            else:
                self.outputs.append({"topic": e.topic} | orjson.loads(e.value))
        logic.out.emits.clear()
        writes = logic.flush(f"s{len(self.outputs)}")
        keep = len(writes) if crash is None else int(len(writes) * crash)
        for key, value in writes[:keep]:
            if value is None:
                self.changelog.pop((stage, logic.partition, key), None)
            else:
                self.changelog[(stage, logic.partition, key)] = orjson.dumps(value)
        if crash is not None:
            self.crashes += 1
            self.start()
            return False
        self.committed[(stage, logic.partition)] = self.pos[(stage, logic.partition)] = end
        return True

    def step(self, stage: str, p: int, size: int, crash: float | None) -> None:
        start = self.pos[(stage, p)]
        if stage == "n":
            batch = self.raw[p][start:start + size]
            for topic, off, value in batch:
                self.n[p].process(topic, off, value)
            self._finish("n", self.n[p], start + len(batch), crash)
        else:
            batch = self.facts[p][start:start + size]
            for fact in batch:
                self.c[p].process_fact(fact)
            self._finish("c", self.c[p], start + len(batch), crash)

    def pending(self) -> bool:
        return any(self.pos[("n", p)] < len(self.raw[p]) or self.pos[("c", p)] < len(self.facts[p])
                   for p in range(PARTS))

    def run(self, plan: list[tuple[int, int, float | None]]) -> None:
        """Batches in a pseudo-random order; ``plan`` gives sizes and crash points, then crash-free."""
        i = 0
        while self.pending():
            size, choice, crash = plan[i] if i < len(plan) else (50, i, None)
            i += 1
            options = [(s, p) for s in ("n", "c") for p in range(PARTS)
                       if self.pos[(s, p)] < len(self.raw[p] if s == "n" else self.facts[p])]
            stage, p = options[choice % len(options)]
            self.step(stage, p, size, crash)
        # Close everything: event time runs on with the (manual) clock, no crashes.
        self.clock.advance(days=3)
        for _ in range(3):
            for logic in self.n:
                logic.tick()
                self._finish("n", logic, self.pos[("n", logic.partition)], None)
            while self.pending():
                for p in range(PARTS):
                    self.step("c", p, 1000, None)
            for logic in self.c:
                logic.tick()
                self._finish("c", logic, self.pos[("c", logic.partition)], None)

    def final(self) -> dict[str, dict[str, Any]]:
        out: dict[str, dict[str, Any]] = {}
        for row in self.outputs:
            rows = out.setdefault(row["topic"], {})
            cur = rows.get(row["id"])
            if cur is None or row["version"] >= cur["version"]:
                rows[row["id"]] = row
        return {t: {k: {f: v for f, v in r.items() if f not in WALL} for k, r in rows.items()
                    if not (t == str(Topic.FINDINGS) and r.get("retracted"))}
                for t, rows in out.items()}


def _messages(seed: int, count: int, dup_rate: float) -> list[tuple[str, bytes, bytes]]:
    rng = random.Random(seed)
    specs = traffic.mixed(count, seed=seed, spacing_s=0.7)
    for s in specs[: count // 4]:
        s.t0 += timedelta(seconds=rng.randint(0, 30))  # some interactions overlap others
    msgs = [raw(p) for p in traffic.events_in_time_order(specs)]
    out = []
    for m in msgs:
        out.append(m)
        if rng.random() < dup_rate:
            out.append(m)  # a producer retry
    return out


plans = st.lists(st.tuples(st.integers(1, 40), st.integers(0, 1000),
                           st.one_of(st.none(), st.none(), st.floats(0, 1))), min_size=5, max_size=40)


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(seed=st.integers(0, 10_000), plan=plans, dup_rate=st.sampled_from([0.0, 0.1, 0.3]))
def test_crash_anywhere_in_the_flush_protocol_replays_to_identical_final_outputs(
        seed: int, plan: list[tuple[int, int, float | None]], dup_rate: float) -> None:
    messages = _messages(seed, 25, dup_rate)
    reference = Worker(messages)
    reference.run([(size, choice, None) for size, choice, _ in plan])
    crashed = Worker(messages)
    crashed.run(plan)
    want, got = reference.final(), crashed.final()
    assert want.keys() == got.keys()
    for topic in want:
        assert got[topic] == want[topic], (topic, crashed.crashes)
    assert len(want[str(Topic.INTERACTIONS)]) == 25
