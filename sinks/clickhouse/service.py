"""The sink loop: consume topics, batch per partition, insert into ClickHouse, then commit offsets.

Order of a flush (``flush_partition``), pinned by tests:
  1. insert the batch's rows with a deduplication token from topic/partition/offset range
     (rows ClickHouse refuses are isolated by bisection),
  2. insert dead letters for messages that could not become rows,
  3. commit the Kafka offset after the batch.
A crash between 1 and 3 re-delivers the batch; the same token makes ClickHouse drop the repeat,
and the ReplacingMergeTree key plus the analyst views collapse anything that slips through.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata

from gateledger import jsonutil
from gateledger.deadletter import make_dead_letter
from gateledger.masking import Masker
from sinks.clickhouse import telemetry
from sinks.clickhouse.rows import RowError, TableMapping
from sinks.clickhouse.settings import SinkSettings
from sinks.clickhouse.writer import RetryableInsertError, Writer

log = logging.getLogger(__name__)


@dataclass
class Batch:
    """Rows consumed from one partition and not yet committed."""

    tp: TopicPartition
    mapping: TableMapping
    rows: list[list[Any]] = field(default_factory=list)
    origins: list[tuple[int, bytes]] = field(default_factory=list)  # (offset, raw value) per row
    bad: list[tuple[int, bytes, str, str]] = field(default_factory=list)  # (offset, raw, reason, error)
    first_offset: int = -1
    last_offset: int = -1
    opened_at: float = field(default_factory=time.monotonic)

    def __len__(self) -> int:
        return len(self.rows) + len(self.bad)

    @property
    def token(self) -> str:
        return f"{self.tp.topic}:{self.tp.partition}:{self.first_offset}-{self.last_offset}"


class SinkService:
    """Consumes the sink's topics and lands them in ClickHouse, exactly once in effect."""

    def __init__(
        self,
        settings: SinkSettings,
        consumer: AIOKafkaConsumer,
        writer: Writer,
        mappings: dict[str, TableMapping],
        dead_letters: TableMapping,
        masker: Masker,
        sleep: Callable[[float], Any] = asyncio.sleep,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.writer = writer
        self.mappings = mappings  # physical topic name -> table mapping
        self.dead_letters = dead_letters
        self.masker = masker
        self._sleep = sleep
        self._batches: dict[TopicPartition, Batch] = {}
        self._inflight: dict[TopicPartition, asyncio.Task[None]] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._stopping = asyncio.Event()
        self._paused = False
        self.landed = 0

    # -- consumption ---------------------------------------------------------------------------

    def listener(self) -> ConsumerRebalanceListener:
        """Rebalance hooks: finish in-flight flushes of revoked partitions, drop their buffers."""
        service = self

        class _Listener(ConsumerRebalanceListener):
            async def on_partitions_revoked(self, revoked: Any) -> None:
                tasks = [service._inflight[tp] for tp in revoked if tp in service._inflight]
                if tasks:
                    await asyncio.gather(*tasks, return_exceptions=True)
                for tp in revoked:
                    # Uncommitted rows are re-delivered to the partition's next owner.
                    service._batches.pop(tp, None)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                return None

        return _Listener()

    def _add(self, tp: TopicPartition, offset: int, value: bytes | None) -> None:
        mapping = self.mappings[tp.topic]
        batch = self._batches.get(tp)
        if batch is None:
            batch = self._batches[tp] = Batch(tp, mapping)
        if batch.first_offset < 0:
            batch.first_offset = offset
        batch.last_offset = offset
        raw = value or b""
        try:
            obj = jsonutil.loads(raw)
            batch.rows.append(mapping.to_row(obj, tp.topic, tp.partition, offset))
            batch.origins.append((offset, raw))
        except jsonutil.JSONDecodeError as exc:
            batch.bad.append((offset, raw, "invalid_json", f"invalid JSON: {exc}"))
        except RowError as exc:
            batch.bad.append((offset, raw, "row_mapping", str(exc)))

    def buffered(self) -> int:
        """Rows consumed and not yet landed."""
        return sum(len(b) for b in self._batches.values())

    async def run(self) -> None:
        """Consume until ``stop()``; then flush what is buffered and return."""
        wait_s = self.settings.batch_max_wait_ms / 1000
        try:
            while not self._stopping.is_set():
                records = await self.consumer.getmany(
                    timeout_ms=min(100, self.settings.batch_max_wait_ms),
                    max_records=self.settings.fetch_max_records,
                )
                for tp, msgs in records.items():
                    for msg in msgs:
                        self._add(tp, msg.offset, msg.value)
                self._update_lag()
                now = time.monotonic()
                for tp, batch in list(self._batches.items()):
                    due = len(batch) >= self.settings.batch_max_rows or now - batch.opened_at >= wait_s
                    if due and len(batch) and tp not in self._inflight:
                        self._start_flush(tp)
                self._apply_backpressure()
        finally:
            await self._drain()

    def stop(self) -> None:
        """Ask the loop to finish (buffered rows are flushed first)."""
        self._stopping.set()

    def _start_flush(self, tp: TopicPartition) -> None:
        batch = self._batches.pop(tp)
        task = asyncio.create_task(self.flush_partition(batch), name=f"flush {batch.token}")
        self._inflight[tp] = task
        task.add_done_callback(lambda _t, tp=tp: self._inflight.pop(tp, None))

    async def _drain(self) -> None:
        for tp in list(self._batches):
            if tp not in self._inflight and len(self._batches[tp]):
                self._start_flush(tp)
        while self._inflight:
            await asyncio.gather(*list(self._inflight.values()), return_exceptions=True)
            for tp in list(self._batches):
                if tp not in self._inflight and len(self._batches[tp]):
                    self._start_flush(tp)

    def _apply_backpressure(self) -> None:
        buffered = self.buffered()
        telemetry.BUFFERED_ROWS.set(buffered)
        assigned = list(self.consumer.assignment())
        if not self._paused and buffered >= self.settings.max_buffered_rows:
            self.consumer.pause(*assigned)
            self._paused = True
        elif self._paused and buffered < self.settings.max_buffered_rows // 2:
            self.consumer.resume(*assigned)
            self._paused = False

    def _update_lag(self) -> None:
        for tp in self.consumer.assignment():
            hw = self.consumer.highwater(tp)
            landed = self._committed.get(tp)
            if hw is not None and landed is not None:
                telemetry.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(hw - landed, 0))

    # -- flushing ------------------------------------------------------------------------------

    async def flush_partition(self, batch: Batch) -> None:
        """Land one partition's batch: insert rows, insert dead letters, commit. Retries until it works."""
        # 1. rows
        rejected = await self._retrying(batch.mapping.table, lambda: self.writer.insert_isolating(
            batch.mapping, batch.rows, batch.token))
        letters = [
            (batch.origins[i][0], batch.origins[i][1], "rejected_by_clickhouse", err) for i, err in rejected
        ] + batch.bad
        # 2. dead letters
        if letters:
            dl_rows = [self._dead_letter_row(batch.tp, off, raw, reason, err) for off, raw, reason, err in letters]
            await self._retrying(self.dead_letters.table, lambda: self.writer.insert_isolating(
                self.dead_letters, dl_rows, batch.token + "/dead"))
            for _, _, reason, _ in letters:
                telemetry.DEAD_LETTERS.labels(table=batch.mapping.table, reason=reason).inc()
        # 3. offsets
        await self._commit(batch.tp, batch.last_offset + 1)
        self.landed += len(batch)

    async def _retrying(self, table: str, fn: Callable[[], Any]) -> Any:
        delay = self.settings.retry_backoff_initial_s
        while True:
            try:
                result = await asyncio.to_thread(fn)
                telemetry.FAILING.set(0)
                return result
            except RetryableInsertError as exc:
                telemetry.FAILING.set(1)
                telemetry.RETRIES.labels(table=table).inc()
                log.warning("ClickHouse insert failed, retrying in %.1fs: %s", delay, exc)
                await self._sleep(delay)
                delay = min(delay * 2, self.settings.retry_backoff_max_s)

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        try:
            await self.consumer.commit({tp: OffsetAndMetadata(offset, "")})
            self._committed[tp] = offset
        except (CommitFailedError, IllegalStateError) as exc:
            # The partition moved to another member; it re-consumes from the last commit and the
            # deduplication token absorbs the repeat.
            log.warning("commit of %s@%d failed after a rebalance: %s", tp, offset, exc)
        except KafkaError as exc:
            log.warning("commit of %s@%d failed, will be retried with the next batch: %s", tp, offset, exc)

    def _dead_letter_row(self, tp: TopicPartition, offset: int, raw: bytes, reason: str, error: str) -> list[Any]:
        dl = make_dead_letter(
            stage="sink",
            origin=tp.topic,
            reason=reason,
            error=error,
            original=raw,
            masker=self.masker,
            kafka_topic=tp.topic,
            kafka_partition=tp.partition,
            kafka_offset=offset,
        )
        return self.dead_letters.to_row(dl.model_dump(mode="json"), tp.topic, tp.partition, offset)
