"""The thin layer between faust and a stage's pure per-partition logic.

A stage is a class with ``load(items)``, ``process(...)``, ``tick()``, ``flush(suffix)`` and an
``out`` batch of messages; the ``StageRunner`` feeds it batches of events per partition, then, in
this order (the order is what makes a crash harmless):

1. produce every output and wait for the broker's acknowledgements;
2. write the changed state entries to the stage's faust table (in-memory store + changelog topic,
   one changelog partition per source partition, in the order the stage gives);
3. let faust commit the source offsets (it flushes the producer first).

A crash before 2 replays the batch against the old state and produces the same outputs again
(same ids and versions: the sink collapses them). A crash during 2 leaves a prefix of the writes
(see ``common/partition_state.py``), and replaying the batch over it changes nothing twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import time
from collections.abc import Callable, Iterable
from typing import Any, Protocol

import orjson
from faust.types import EventT, TableT

from stream_processors import telemetry
from stream_processors.common.emit import Batch, Emit
from stream_processors.common.timeutil import clock_us
from stream_processors.common.partitioning import partition_for
from stream_processors.common.produce import PartitionBatches, kafka_producer

PACK_MAX = 500  # facts per packed message (keeps messages well under 1 MB)

log = logging.getLogger(__name__)


class PartitionLogic(Protocol):
    partition: int
    out: Batch

    def load(self, items: list[tuple[str, Any]]) -> None: ...
    def tick(self) -> None: ...
    def flush(self, suffix: str) -> list[tuple[str, Any]]: ...
    def entries(self) -> int: ...


class StageRunner:
    """Runs one stage's partitions inside a faust worker."""

    def __init__(
        self,
        *,
        app: Any,
        stage: str,
        table: TableT,
        factory: Callable[[int], PartitionLogic],
        topic_names: dict[str, str],
        clock_us: Callable[[], int],
        feed: Callable[[PartitionLogic, EventT], int],  # returns the events in the message
        packed: dict[str, int] | None = None,
    ) -> None:
        self.app = app
        self.stage = stage
        self.table = table
        self.factory = factory
        self.topic_names = topic_names  # logical emit topic -> physical topic
        self.clock_us = clock_us
        self.feed = feed
        self.packed = packed or {}  # logical internal topic -> its partition count
        self.parts: dict[int, PartitionLogic] = {}
        self.lock = asyncio.Lock()
        self._generation = -1
        self.last_offsets: dict[tuple[str, int], int] = {}
        self._in = telemetry.EVENTS_IN.labels(stage=stage)
        self._batch_time = telemetry.BATCH_SECONDS.labels(stage=stage)
        self._delay = telemetry.EMIT_DELAY.labels(stage=stage)
        self._out: dict[str, Any] = {}
        self._changelog = table.changelog_topic.get_topic_name()

    # -- state --------------------------------------------------------------------------------------

    def _store(self) -> dict[str, Any]:
        store = self.table.data
        return getattr(store, "data", store)  # the memory store's dict

    def store(self) -> dict[str, Any]:
        """The stage table's entries (``<partition>|<key>`` -> value), shared, not copied."""
        return self._store()

    def _check_generation(self) -> None:
        gen = self.app.rebalancing_count
        if gen != self._generation:
            # Partitions may have moved: rebuild from the (recovered) table on next use. The
            # consumer restarts from the committed offsets too: the progress gauges fall back to
            # those until this generation's first batch (an old, higher offset would hide a stall).
            self.parts.clear()
            self.last_offsets.clear()
            self._generation = gen

    def part(self, partition: int) -> PartitionLogic:
        """The logic of one partition, loaded from the table on first use after a rebalance."""
        logic = self.parts.get(partition)
        if logic is None:
            logic = self.factory(partition)
            prefix = f"{partition}|"
            n = len(prefix)
            items = [(k[n:], v) for k, v in self._store().items() if isinstance(k, str) and k.startswith(prefix)]
            logic.load(items)
            self.parts[partition] = logic
            log.info("%s: partition %d loaded with %d state entries", self.stage, partition, len(items))
        return logic

    def entries(self) -> int:
        return sum(p.entries() for p in self.parts.values())

    # -- processing ---------------------------------------------------------------------------------

    async def run_batch(self, events: Iterable[EventT]) -> None:
        """Process one batch of events (any mix of partitions), then flush."""
        started = time.perf_counter()
        async with self.lock:
            self._check_generation()
            touched: dict[int, PartitionLogic] = {}
            n = 0
            for ev in events:
                msg = ev.message
                logic = touched.get(msg.partition)
                if logic is None:
                    logic = touched[msg.partition] = self.part(msg.partition)
                n += self.feed(logic, ev)
                self.last_offsets[(msg.topic, msg.partition)] = msg.offset
            self._in.inc(n)
            await self._flush(touched.values())
        self._batch_time.observe(time.perf_counter() - started)

    async def tick(self) -> None:
        """Idle watermark progress and the timers it fires (outside any stream event)."""
        if self.app.rebalancing or getattr(self.app, "in_recovery", False):
            return
        async with self.lock:
            self._check_generation()
            for logic in self.parts.values():
                logic.tick()
            await self._flush(list(self.parts.values()))

    async def _flush(self, parts: Iterable[PartitionLogic]) -> None:
        parts = list(parts)
        emits: list[Emit] = []
        for logic in parts:
            emits.extend(logic.out.emits)
            logic.out.emits.clear()
        if emits:
            await self._produce(emits)
        suffix = f"{os.getpid()}-{time.monotonic_ns()}"
        for logic in parts:
            await self._write(logic.partition, logic.flush(suffix))

    async def _produce(self, emits: list[Emit]) -> None:
        batches = PartitionBatches(kafka_producer(self.app))
        now_us = self.clock_us()
        names = self.topic_names
        packs: dict[tuple[str, int], list[Any]] = {}
        counts: dict[str, int] = {}  # per logical topic: one counter increment per flush, not per message
        delay = self._delay
        for e in emits:
            topic = names[e.topic]
            if e.obj is not None:
                # Internal messages travel packed: one message per partition and batch, partitioned
                # by key exactly as Kafka's default partitioner would place each one.
                parts = self.packed[e.topic]
                packs.setdefault((topic, partition_for(e.key.encode(), parts)), []).append(e.obj)
            else:
                batches.add(topic, e.key.encode(), e.value)
            counts[e.topic] = counts.get(e.topic, 0) + 1
            if e.event_us is not None:
                delay.observe(max(0.0, (now_us - e.event_us) / 1e6))
        for name, n in counts.items():
            counter = self._out.get(name)
            if counter is None:
                counter = self._out[name] = telemetry.EVENTS_OUT.labels(stage=self.stage, topic=name)
            counter.inc(n)
        for (topic, partition), objs in packs.items():
            for i in range(0, len(objs), PACK_MAX):
                batches.add(topic, b"pack", orjson.dumps(objs[i:i + PACK_MAX]), partition)
        # Outputs first: state that says "done" must never be persisted before what it did.
        await asyncio.gather(*await batches.send())

    async def _write(self, partition: int, writes: list[tuple[str, Any]]) -> None:
        """Apply writes to the table's store and append them to its changelog partition, in order.

        Straight to the producer as one record batch, in the exact bytes faust's json codec reads
        back on recovery (faust's own ``send_changelog`` path costs several times more per
        message); faust's offset commit flushes this producer before it commits.
        """
        if not writes:
            return
        store = self._store()
        topic = self._changelog
        batches = PartitionBatches(kafka_producer(self.app))
        dumps = orjson.dumps
        for key, value in writes:
            full = f"{partition}|{key}"
            if value is None:
                store.pop(full, None)
                batches.add(topic, dumps(full), None, partition)
            else:
                store[full] = value
                batches.add(topic, dumps(full), dumps(value), partition)
        await batches.send()


_REPORTED: set[tuple[str, int]] = set()


def consumer_progress(app: Any, runners: Iterable[StageRunner]) -> None:
    """Publish, per assigned source partition, the next offset to process and the lag behind it.

    The position is the offset after the last one processed, or the committed offset before a
    partition's first batch, so a worker that consumes nothing after a restart shows its lag too
    (``GateledgerProcessorStalled``). Partitions no longer assigned lose their series: a stale
    value would look like a stall.
    """
    consumer = app.consumer
    try:
        assignment = consumer.assignment()
        changelogs = app.tables.changelog_topics
    except Exception:  # not started or mid-rebalance
        return
    processed: dict[tuple[str, int], int] = {}
    for runner in runners:
        for key, offset in runner.last_offsets.items():
            processed[key] = max(processed.get(key, -1), offset)
    committed = getattr(consumer, "_committed_offset", {})
    seen: set[tuple[str, int]] = set()
    for tp in assignment:
        if tp.topic in changelogs or tp.topic.endswith("__assignor-__leader"):
            continue
        key = (tp.topic, tp.partition)
        position = committed.get(tp)
        if key in processed:
            position = max(position or 0, processed[key] + 1)
        if position is None:
            continue  # never committed and nothing processed yet: the position is not known
        try:
            hw = consumer.highwater(tp)
        except Exception:
            continue
        if hw is None:
            continue
        labels = (tp.topic, str(tp.partition))
        telemetry.CONSUMER_POSITION.labels(*labels).set(position)
        telemetry.CONSUMER_LAG.labels(*labels).set(max(0, hw - position))
        seen.add(key)
    assigned = {(tp.topic, tp.partition) for tp in assignment}
    for topic, partition in _REPORTED - assigned:
        for gauge in (telemetry.CONSUMER_POSITION, telemetry.CONSUMER_LAG):
            try:
                gauge.remove(topic, str(partition))
            except KeyError:
                pass
    _REPORTED.intersection_update(assigned)
    _REPORTED.update(seen)


def is_ready(app: Any) -> bool:
    """Started, assigned and recovered: processing events."""
    try:
        recovery = app.tables.recovery
        completed = recovery.completed.is_set()
    except Exception:
        completed = False
    return bool(app.started and completed and not app.rebalancing)


def now_us_from(clock: Callable[[], Any]) -> Callable[[], int]:
    """An epoch-microsecond clock from a datetime clock."""
    return clock_us(clock)
