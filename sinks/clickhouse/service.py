"""The sink loop: consume topics, batch per partition, land each batch in ClickHouse, then commit.

Order of a flush (``flush_partition``), pinned by tests/sinks/test_flush_order.py:
  0. record the batch's offset range in the batch log (unless it re-forms a recorded range),
  1. rolled-up tables: store what the table held for the batch's events (the rollup snapshot),
  2. insert the rows with the batch's deduplication token (rows ClickHouse refuses are isolated by
     bisection),
  3. rolled-up tables: insert the rollup changes computed from the snapshot and the accepted rows,
  4. insert dead letters for messages that could not become rows,
  5. commit the Kafka offset after the batch.
The process may die between any two steps. A restarted sink re-reads from the committed offset,
re-forms the recorded ranges exactly, so every insert of steps 1-4 repeats with the same token and
ClickHouse drops it (materialized views included); the snapshot read back in step 1 is the first
attempt's, so the rollup changes are the same too.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type, wait_exponential

from gateledger.deadletter import make_dead_letter
from gateledger.masking import Masker
from sinks.clickhouse import telemetry
from sinks.clickhouse.batching import Batch, PartitionBuffer
from sinks.clickhouse.batchlog import TABLE as BATCHLOG_TABLE, BatchLog
from sinks.clickhouse.lines import LineCodec, LineError
from sinks.clickhouse.rollups import FEED_TABLE, ROLLUP_SOURCES, RollupFeeder, Row
from sinks.clickhouse.rows import TableMapping
from sinks.clickhouse.settings import SinkSettings
from sinks.clickhouse.writer import RetryableInsertError, UnknownInsertError, Writer

log = logging.getLogger(__name__)

# Between-step moments where fault-injection tests kill the sink (tests/sinks/crashing_sink.py).
CRASH_POINTS = ("recorded", "snapshotted", "inserted", "fed", "dead_lettered", "committed")


class Aborted(RuntimeError):
    """Shutdown gave up waiting for ClickHouse; nothing uncommitted is lost (it is re-read next run)."""


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
        self.batchlog = BatchLog(writer, settings.batch_log_since)
        self.rollups = RollupFeeder(writer)
        self.tables = {topic: m.table for topic, m in mappings.items()}  # physical topic -> table
        self.codecs = {topic: LineCodec.for_mapping(m) for topic, m in mappings.items()}
        self.dead_letters = dead_letters.table
        self.masker = masker
        self._sleep = sleep
        self._buffers: dict[TopicPartition, PartitionBuffer] = {}
        self._inflight: dict[TopicPartition, asyncio.Task[None]] = {}
        self._inflight_size: dict[TopicPartition, tuple[int, int]] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._first_seen: dict[TopicPartition, int] = {}
        # Partitions whose flush failed unexpectedly: nothing after the failed batch may land or be
        # committed in this run (the next run re-reads from the last commit).
        self._failed: set[TopicPartition] = set()
        # Rolled-up tables: snapshot -> insert -> feed must not interleave between partitions.
        self._table_locks = {table: asyncio.Lock() for table in ROLLUP_SOURCES}
        self._stopping = asyncio.Event()
        self._abort = asyncio.Event()
        self._paused = False
        self.landed = 0
        self.flush_errors: list[BaseException] = []

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
                    # Uncommitted rows are re-read by the partition's next owner, which re-forms the
                    # recorded ranges from the batch log.
                    service._buffers.pop(tp, None)
                    service._first_seen.pop(tp, None)
                    service._committed.pop(tp, None)

            async def on_partitions_assigned(self, assigned: Any) -> None:
                return None

        return _Listener()

    async def _buffer_for(self, tp: TopicPartition, first_offset: int) -> PartitionBuffer:
        buf = self._buffers.get(tp)
        if buf is None:
            plan = await self._retrying(BATCHLOG_TABLE, lambda: self.batchlog.plan(tp, first_offset))
            if plan:
                log.info("%s: re-forming %d recorded batch range(s) from offset %d", tp, len(plan), first_offset)
            buf = PartitionBuffer(
                tp, self.tables[tp.topic], plan, self.settings.batch_max_rows, self.settings.batch_max_bytes
            )
            self._buffers[tp] = buf
            self._first_seen.setdefault(tp, first_offset)
        return buf

    def _add(self, buf: PartitionBuffer, offset: int, value: bytes | None, timestamp: int | None = None) -> None:
        tp = buf.tp
        batch = buf.batch_for(offset)
        if batch.first_timestamp is None:
            batch.first_timestamp = timestamp
        raw = value or b""
        codec = self.codecs[tp.topic]
        source = ROLLUP_SOURCES.get(buf.table)
        try:
            obj = codec.parse(raw)
            row = source.normalize(obj) if source else None
            line = codec.encode(raw, obj, tp.topic, tp.partition, offset)
        except LineError as exc:
            batch.bad.append((offset, raw, exc.reason, str(exc)))
        else:
            batch.lines.append(line)
            batch.offsets.append(offset)
            batch.raws.append(raw)
            if row is not None:
                batch.objs.append(row)
        buf.added(batch, offset, len(raw))

    def buffered(self) -> int:
        """Rows consumed and not yet landed."""
        return sum(b.rows() for b in self._buffers.values()) + sum(r for r, _ in self._inflight_size.values())

    def buffered_bytes(self) -> int:
        """Message bytes consumed and not yet landed."""
        return sum(b.bytes() for b in self._buffers.values()) + sum(n for _, n in self._inflight_size.values())

    async def run(self) -> None:
        """Consume until ``stop()``; then flush what is buffered (up to the drain timeout) and return."""
        wait_s = self.settings.batch_max_wait_ms / 1000
        try:
            while not self._stopping.is_set():
                records = await self.consumer.getmany(
                    timeout_ms=min(100, self.settings.batch_max_wait_ms),
                    max_records=self.settings.fetch_max_records,
                )
                for tp, msgs in records.items():
                    if not msgs or tp in self._failed:
                        continue
                    buf = await self._buffer_for(tp, msgs[0].offset)
                    for msg in msgs:
                        self._add(buf, msg.offset, msg.value, msg.timestamp)
                self._schedule(time.monotonic(), wait_s)
                self._update_lag()
                self._apply_backpressure()
                self._raise_flush_errors()
        finally:
            await self._drain()

    def stop(self) -> None:
        """Ask the loop to finish (buffered rows are flushed first)."""
        self._stopping.set()

    def _schedule(self, now: float, wait_s: float) -> None:
        assigned = self.consumer.assignment()
        for tp, buf in list(self._buffers.items()):
            if tp not in assigned:
                # Revoked while its messages were being read: the new owner lands them.
                self._buffers.pop(tp, None)
                continue
            buf.close_if_due(now, wait_s)
            if tp not in self._inflight and buf.closed:
                self._start_flush(buf.pop_ready())  # type: ignore[arg-type]

    def _start_flush(self, batch: Batch) -> None:
        tp = batch.tp
        self._inflight_size[tp] = (len(batch), batch.nbytes)
        task = asyncio.create_task(self.flush_partition(batch), name=f"flush {batch.token}")
        self._inflight[tp] = task

        def done(t: asyncio.Task[None], tp: TopicPartition = tp) -> None:
            self._inflight.pop(tp, None)
            self._inflight_size.pop(tp, None)
            if not t.cancelled() and t.exception() is not None:
                self._failed.add(tp)
                self._buffers.pop(tp, None)
                if not isinstance(t.exception(), Aborted):
                    self.flush_errors.append(t.exception())  # type: ignore[arg-type]

        task.add_done_callback(done)

    def _raise_flush_errors(self) -> None:
        if self.flush_errors:
            # A flush failed in a way retries cannot fix (a bug): stop rather than commit past it.
            raise self.flush_errors[0]

    async def _drain(self) -> None:
        for buf in self._buffers.values():
            # An incomplete re-formed batch is left to the next run, which re-forms it whole.
            buf.close_if_due(float("inf"), 0)

        async def drain_all() -> None:
            while True:
                self._schedule(time.monotonic(), float("inf"))
                if not self._inflight:
                    return
                await asyncio.gather(*list(self._inflight.values()), return_exceptions=True)

        try:
            await asyncio.wait_for(drain_all(), self.settings.drain_timeout_s)
        except TimeoutError:
            log.warning("ClickHouse did not take the buffered rows within %.0fs; they are re-read next run",
                        self.settings.drain_timeout_s)
            self._abort.set()
            await asyncio.gather(*list(self._inflight.values()), return_exceptions=True)

    def _apply_backpressure(self) -> None:
        rows, nbytes = self.buffered(), self.buffered_bytes()
        telemetry.BUFFERED_ROWS.set(rows)
        telemetry.BUFFERED_BYTES.set(nbytes)
        assigned = list(self.consumer.assignment())
        full = rows >= self.settings.max_buffered_rows or nbytes >= self.settings.max_buffered_bytes
        relieved = rows < self.settings.max_buffered_rows // 2 and nbytes < self.settings.max_buffered_bytes // 2
        if not self._paused and full:
            self.consumer.pause(*assigned)
            self._paused = True
            telemetry.PAUSED.set(1)
            log.info("ClickHouse is behind: pausing consumption (%d rows, %d bytes buffered)", rows, nbytes)
        elif self._paused and relieved:
            self.consumer.resume(*assigned)
            self._paused = False
            telemetry.PAUSED.set(0)
        elif self._paused:
            # Partitions assigned while paused must not start fetching.
            self.consumer.pause(*assigned)

    def _update_lag(self) -> None:
        for tp in self.consumer.assignment():
            hw = self.consumer.highwater(tp)  # from fetch responses: right on Tansu, unlike end_offsets()
            landed = self._committed.get(tp, self._first_seen.get(tp))
            if hw is not None and landed is not None:
                telemetry.CONSUMER_LAG.labels(topic=tp.topic, partition=str(tp.partition)).set(max(hw - landed, 0))

    # -- flushing ------------------------------------------------------------------------------

    async def flush_partition(self, batch: Batch) -> None:
        """Land one partition's batch (steps in the module docstring). Retries ClickHouse until it works."""
        table = batch.table
        if batch.replay:
            telemetry.REPLAYED_BATCHES.labels(table=table).inc()
        else:
            # 0. the range, durably, before anything of it lands
            await self._retrying(BATCHLOG_TABLE, lambda: self.batchlog.record(batch.tp, batch.first_offset,
                                                                               batch.last_offset))
        self._crash("recorded")
        source = ROLLUP_SOURCES.get(table)
        lock = self._table_locks[table] if source else contextlib.nullcontext()
        async with lock:
            prior: dict[str, Row] = {}
            if source:
                # 1. what the table held for these events (stored once; a replay reads the first attempt's)
                prior = await self._retrying(table, lambda: self.rollups.snapshot(source, batch.token, batch.objs))
                self._crash("snapshotted")
            # 2. the rows
            rejected, refused_reason = await self._insert_rows(table, batch)
            self._crash("inserted")
            if source:
                # 3. the rollup changes of the rows ClickHouse accepted
                refused = {i for i, _ in rejected}
                accepted = [row for i, row in enumerate(batch.objs) if i not in refused]
                fed = await self._retrying(FEED_TABLE, lambda: self.rollups.feed(source, batch.token, prior, accepted))
                telemetry.ROLLUP_CHANGES.labels(table=table).inc(fed)
                self._crash("fed")
        # 4. dead letters
        letters = [(batch.offsets[i], batch.raws[i], refused_reason, err) for i, err in rejected]
        letters += batch.bad
        if letters:
            lines = [self._dead_letter_line(batch.tp, off, raw, reason, err) for off, raw, reason, err in letters]
            lost = await self._retrying(
                self.dead_letters, lambda: self.writer.insert_isolating(self.dead_letters, lines, f"{batch.token}/dead")
            )
            for i, err in lost:
                # Not silent, at least: a dead letter ClickHouse refuses is a bug to chase.
                log.error("dead letter for %s@%d refused by ClickHouse: %s", batch.tp, letters[i][0], err)
            for _, _, reason, _ in letters:
                telemetry.DEAD_LETTERS.labels(table=table, reason=reason).inc()
            self._crash("dead_lettered")
        # 5. offsets
        await self._commit(batch.tp, batch.last_offset + 1)
        self._crash("committed")
        telemetry.COMMITTED_BATCHES.labels(table=table).inc()
        self.landed += len(batch)

    async def _retrying(self, table: str, fn: Callable[[], Any], bounded: bool = False) -> Any:
        """Run ``fn`` in a thread until it works. Unavailability is retried for as long as it lasts;
        with ``bounded``, an UnknownInsertError is re-raised after ``unknown_error_attempts`` attempts
        in a row (the caller then isolates the rows it follows)."""
        unknown = 0

        def give_up(state: RetryCallState) -> bool:
            nonlocal unknown
            exc = state.outcome.exception() if state.outcome else None
            unknown = unknown + 1 if isinstance(exc, UnknownInsertError) else 0
            if isinstance(exc, UnknownInsertError):
                telemetry.UNKNOWN_ERRORS.labels(table=table).inc()
            return self._abort.is_set() or (bounded and unknown >= self.settings.unknown_error_attempts)

        def before_sleep(state: RetryCallState) -> None:
            telemetry.FAILING.set(1)
            telemetry.RETRIES.labels(table=table).inc()
            log.warning("ClickHouse failed (%s), retrying in %.1fs: %s", table, state.upcoming_sleep,
                        state.outcome.exception() if state.outcome else None)

        try:
            async for attempt in AsyncRetrying(
                retry=retry_if_exception_type(RetryableInsertError),
                stop=give_up,
                wait=wait_exponential(multiplier=self.settings.retry_backoff_initial_s, exp_base=2,
                                      min=self.settings.retry_backoff_initial_s, max=self.settings.retry_backoff_max_s),
                sleep=self._sleep,
                before_sleep=before_sleep,
                reraise=True,
            ):
                with attempt:
                    result = await asyncio.to_thread(fn)
        except RetryableInsertError as exc:
            telemetry.FAILING.set(1)
            if self._abort.is_set():
                raise Aborted(str(exc)) from exc
            raise
        telemetry.FAILING.set(0)
        return result

    async def _insert_rows(self, table: str, batch: Batch) -> tuple[list[tuple[int, str]], str]:
        """Step 2: the rows, and the dead-letter reason of those refused. An error of no known kind
        that persists is a poison row: after the bounded retries the batch is bisected with that
        error counted as a refusal, so the good rows land, the poison ones are dead-lettered
        (``clickhouse_error``) and the partition moves on."""
        try:
            rejected = await self._retrying(
                table, lambda: self.writer.insert_isolating(table, batch.lines, batch.token), bounded=True)
            return rejected, "rejected_by_clickhouse"
        except UnknownInsertError as exc:
            log.error("ClickHouse keeps failing on %s with an unknown error; isolating the rows it follows: %s",
                      batch.token, exc)
        rejected = await self._retrying(
            table, lambda: self.writer.insert_isolating(table, batch.lines, batch.token, unknown_is_rejection=True))
        return rejected, "clickhouse_error"

    async def _commit(self, tp: TopicPartition, offset: int) -> None:
        try:
            await self.consumer.commit({tp: OffsetAndMetadata(offset, "")})
            self._committed[tp] = offset
        except (CommitFailedError, IllegalStateError) as exc:
            # The partition moved to another member; it re-reads from the last commit and re-forms
            # this batch from the batch log, so ClickHouse drops the repeat.
            log.warning("commit of %s@%d failed after a rebalance: %s", tp, offset, exc)
        except KafkaError as exc:
            log.warning("commit of %s@%d failed, will be retried with the next batch: %s", tp, offset, exc)

    def _crash(self, point: str) -> None:
        """The flush step ``point`` (one of CRASH_POINTS) is done: nothing here, a fault-injection test's
        wrapper kills the process at this moment."""

    def _dead_letter_line(self, tp: TopicPartition, offset: int, raw: bytes, reason: str, error: str) -> bytes:
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
        return dl.model_dump_json().encode()
