"""The stages without Kafka or faust: the same per-partition logic driven in-process.

Used by unit and property tests (order independence, replay) and by the benchmark of the pure
logic. Messages are partitioned by key exactly as Kafka's default partitioner does, facts are
routed by root key to the correlate partitions, and state goes through the same flush protocol.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from gateledger.clock import Clock, utcnow
from gateledger.masking import Masker
from stream_processors.common.emit import Emit
from stream_processors.common.partitioning import partition_for
from stream_processors.correlate.stage import CorrelatePartition
from stream_processors.normalize.stage import FACTS, NormalizePartition, RawTopics
from stream_processors.settings import ProcessorSettings


@dataclass
class LocalPipeline:
    """Normalize + correlate over in-memory partitions; ``outputs`` collects every emitted message."""

    settings: ProcessorSettings = field(default_factory=ProcessorSettings)
    partitions: int = 4
    clock: Clock = utcnow
    prefix: str = ""
    masker: Masker = field(default_factory=lambda: Masker(salt=b"local"))
    outputs: list[Emit] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.topics = RawTopics.with_prefix(self.prefix)
        self.normalize = [NormalizePartition(p, self.settings, self.topics, self.masker, self.clock)
                          for p in range(self.partitions)]
        self.correlate = [CorrelatePartition(p, self.settings, self.clock) for p in range(self.partitions)]
        self.offsets: dict[tuple[str, int], int] = {}
        self.facts = 0

    def feed(self, messages: Iterable[tuple[str, bytes, bytes]], flush_every: int = 1000) -> None:
        """Raw (physical topic, key, value) messages, in order."""
        n = 0
        for topic, key, value in messages:
            p = partition_for(key, self.partitions)
            off = self.offsets.get((topic, p), 0)
            self.offsets[(topic, p)] = off + 1
            self.normalize[p].process(topic, off, value)
            n += 1
            if n % flush_every == 0:
                self.flush()
        self.flush()

    def tick(self) -> None:
        for part in self.normalize:
            part.tick()
        self.flush()
        for cpart in self.correlate:
            cpart.tick()
        self.flush()

    def flush(self) -> None:
        """Move facts to the correlate partitions, collect outputs, persist nothing (state stays in memory)."""
        facts: list[Emit] = []
        for part in self.normalize:
            for e in part.out.emits:
                (facts if e.topic == FACTS else self.outputs).append(e)
            part.out.emits.clear()
            part.flush("local")
        for e in facts:
            self.facts += 1
            self.correlate[partition_for(e.key.encode(), self.partitions)].process_fact(e.obj, defer=True)
        for cpart in self.correlate:
            cpart.emit_touched()
            self.outputs.extend(cpart.out.emits)
            cpart.out.emits.clear()
            cpart.flush()

    def by_topic(self) -> dict[str, list[Any]]:
        """Emitted rows per logical topic, decoded."""
        import orjson

        out: dict[str, list[Any]] = {}
        for e in self.outputs:
            out.setdefault(e.topic, []).append(orjson.loads(e.value))
        return out

    def final(self, topic: str) -> dict[str, Any]:
        """id -> the row with the highest version on a topic."""
        rows: dict[str, Any] = {}
        for r in self.by_topic().get(topic, []):
            cur = rows.get(r["id"])
            if cur is None or r["version"] >= cur["version"]:
                rows[r["id"]] = r
        return rows
