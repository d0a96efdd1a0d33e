"""The sink loop: consume topics, batch per partition, land the batches of one table together, then commit.

A batch is one partition's offset range; a **flush** lands the oldest closed batch of every partition
of one table together, as one unit of exactly-once with one deduplication token (the batch's own when
it is alone, else one derived from all of the flush's batch tokens). Every insert is done once per
flush, not once per batch: chDB spends ~10 ms of CPU per part an insert creates (inode allocation on
ext4, whatever the rows), and a rollup feed creates one part per rollup view, so per-batch inserts over
14 topics x 4 partitions were most of the sink's CPU (issue 18).

Order of a flush (``flush_table``), pinned by tests/sinks/clickhouse/test_flush_order.py:
  0. record the flush in the batch log: its batches' offset ranges with the flush id, one insert
     (a flush re-formed from the log is not recorded again),
  1. rolled-up tables: store what the table held for the batches' events (the rollup snapshot: one
     look-up and one insert, stored per batch; batches of one flush share no event id),
  2. insert the rows of all its batches with the flush's token (rows ClickHouse refuses are isolated
     by bisection),
  3. rolled-up tables: insert the rollup changes, computed per batch from its snapshot and its accepted
     rows, with the flush's token,
  4. insert dead letters for messages that could not become rows, with the flush's token,
  5. commit the Kafka offsets after the batches, one commit.
Why this stays exactly once: the process may die between any two steps. A restarted sink (or the
partition's next owner) re-reads from the committed offset and re-forms the recorded ranges exactly;
a re-formed batch that belonged to a flush of several lands with the same batches again (``plan`` and
``members`` of the batch log; batches of partitions this sink does not consume, or has committed past,
are re-read from Kafka for the purpose and not committed here), so every insert of steps 1-4 repeats
with the same token and the same rows, and ClickHouse drops it (materialized views included); the
snapshot read back in step 1 is the first attempt's, so the rollup changes are the same too. Such a
re-formed flush can only repeat what already landed or complete the one flush of the table that was
in flight when the process died (flushes of a table run one at a time, in partition order).
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from typing import Any

from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, ConsumerRecord, TopicPartition
from aiokafka.errors import CommitFailedError, IllegalStateError, KafkaError
from aiokafka.structs import OffsetAndMetadata
from tenacity import AsyncRetrying, RetryCallState, retry_if_exception_type

from gateledger.deadletter import make_dead_letter
from gateledger.masking import Masker
from gateledger.retry import Backoff
from sinks.clickhouse import telemetry
from sinks.clickhouse.batching import Flush, PartitionBuffer, flush_token_of
from sinks.clickhouse.batchlog import TABLE as BATCHLOG_TABLE, BatchLog, Range
from sinks.clickhouse.lines import LineCodec, LineError
from sinks.clickhouse.rollups import FEED_TABLE, ROLLUP_SOURCES, RollupFeeder, Row
from sinks.clickhouse.rows import TableMapping
from sinks.clickhouse.settings import SinkSettings
from sinks.clickhouse.writer import RetryableInsertError, UnknownInsertError, Writer

log = logging.getLogger(__name__)

# Between-step moments where fault-injection tests kill the sink (tests/sinks/crashing_sink.py).
CRASH_POINTS = ("recorded", "snapshotted", "inserted", "fed", "dead_lettered", "committed")


FetchRange = Callable[[TopicPartition, int, int], Awaitable[list[ConsumerRecord]]]  # a recorded range, re-read


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
        fetch_range: FetchRange | None = None,
    ) -> None:
        self.settings = settings
        self.consumer = consumer
        self.writer = writer
        self.batchlog = BatchLog(writer, settings.batch_log_since)
        self.rollups = RollupFeeder(writer)
        self.tables = {topic: m.table for topic, m in mappings.items()}  # physical topic -> table
        self.codecs = {topic: LineCodec.for_mapping(m) for topic, m in mappings.items()}
        # A recorded flush may hold a batch of a topic this sink does not consume (another one's share).
        self._table_codecs = {codec.table: codec for codec in self.codecs.values()}
        self.dead_letters = dead_letters.table
        self.masker = masker
        self._sleep = sleep
        self._fetch_range = fetch_range
        self._buffers: dict[TopicPartition, PartitionBuffer] = {}
        # One flush per table at a time (which also keeps snapshot -> insert -> feed of a rolled-up
        # table from interleaving between flushes).
        self._inflight: dict[str, asyncio.Task[None]] = {}
        self._inflight_size: dict[str, tuple[int, int]] = {}
        self._committed: dict[TopicPartition, int] = {}
        self._first_seen: dict[TopicPartition, int] = {}
        # Partitions whose flush failed unexpectedly: nothing after the failed batch may land or be
        # committed in this run (the next run re-reads from the last commit).
        self._failed: set[TopicPartition] = set()
        self._rotation = 0
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
                tasks = list(service._inflight.values())  # a flush may hold batches of revoked partitions
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
        codec = self.codecs.get(tp.topic) or self._table_codecs[buf.table]
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
        for table in {buf.table for buf in self._buffers.values()} - set(self._inflight):
            bufs = [buf for buf in self._buffers.values() if buf.table == table]
            if any(buf.peek_ready() is not None for buf in bufs):
                # A flush costs the same for one partition's rows as for all of them: close the table's
                # other open batches early, so they ride along instead of needing a flush of their own.
                for buf in bufs:
                    buf.close_if_due(now, 0)
            flush = self._take(table)
            if flush is not None:
                self._start_flush(table, flush)

    def _take(self, table: str) -> Flush | None:
        """The next flush of ``table``. A re-formed batch at the head of its partition goes first, with
        the other batches of its recorded flush that are at the head of theirs (the flush task re-reads
        the rest). Else the oldest closed batch of each partition, up to ``batch_max_rows`` rows in all
        (at least one batch); on a rolled-up table only batches sharing no event id with those taken
        (a snapshot taken for both before either lands would miss the other's version)."""
        rolled_up = table in ROLLUP_SOURCES
        order = sorted((tp for tp, b in self._buffers.items() if b.table == table), key=lambda t: (t.topic, t.partition))
        # Start each flush at another partition, so that a backlog in the first ones cannot starve the rest.
        self._rotation += 1
        start = self._rotation % len(order) if order else 0
        order = order[start:] + order[:start]
        heads = [(tp, h) for tp in order if (h := self._buffers[tp].peek_ready()) is not None]
        replay = next((h for _, h in heads if h.replay), None)
        if replay is not None:
            if not replay.flush:
                return Flush(table, [self._buffers[replay.tp].pop_ready()], [replay], "", fresh=False)  # type: ignore[list-item]
            owned = [self._buffers[tp].pop_ready() for tp, h in heads if h.replay and h.flush == replay.flush]
            return Flush(table, list(owned), owned, replay.flush, fresh=False)  # type: ignore[arg-type]
        taken: list[Batch] = []
        ids: set[str] = set()
        rows = 0
        for tp, head in heads:
            if taken and rows + len(head) > self.settings.batch_max_rows:
                break
            head_ids = {r["id"] for r in head.objs} if rolled_up else set()
            if head_ids & ids:
                continue
            taken.append(self._buffers[tp].pop_ready())  # type: ignore[arg-type]
            ids |= head_ids
            rows += len(head)
        if not taken:
            return None
        taken.sort(key=lambda b: (b.tp.topic, b.tp.partition, b.first_offset))
        flush_id = "" if len(taken) == 1 else flush_token_of(table, [b.token for b in taken])
        return Flush(table, taken, list(taken), flush_id, fresh=True)

    def _start_flush(self, table: str, flush: Flush) -> None:
        batches = flush.owned
        self._inflight_size[table] = (sum(len(b) for b in batches), sum(b.nbytes for b in batches))
        task = asyncio.create_task(self.flush_table(flush), name=f"flush {table} x{len(batches)}")
        self._inflight[table] = task

        def done(t: asyncio.Task[None], table: str = table) -> None:
            self._inflight.pop(table, None)
            self._inflight_size.pop(table, None)
            if not t.cancelled() and t.exception() is not None:
                for b in batches:
                    self._failed.add(b.tp)
                    self._buffers.pop(b.tp, None)
                if not isinstance(t.exception(), Aborted):
                    self.flush_errors.append(t.exception())  # type: ignore[arg-type]

        task.add_done_callback(done)

    def _raise_flush_errors(self) -> None:
        if self.flush_errors:
            # A flush failed in a way retries cannot fix (a bug): stop rather than commit past it.
            raise self.flush_errors[0]

    async def _drain(self) -> None:
        async def drain_all() -> None:
            while True:
                for buf in self._buffers.values():
                    # Nothing more arrives: every open batch closes (one behind a waiting batch too).
                    # An incomplete re-formed batch is left to the next run, which re-forms it whole.
                    buf.close_free()
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

    async def flush_table(self, flush: Flush) -> None:
        """Land the batches of one flush (steps in the module docstring). Retries ClickHouse until it works."""
        table = flush.table
        if flush.fresh:
            # 0. the ranges, durably, before anything of them lands
            ranges = [(b.tp, b.first_offset, b.last_offset) for b in flush.batches]
            await self._retrying(BATCHLOG_TABLE, lambda: self.batchlog.record_many(ranges, flush.flush_id))
        else:
            telemetry.REPLAYED_BATCHES.labels(table=table).inc(len(flush.owned))
            if flush.flush_id:
                await self._complete(flush)
        self._crash("recorded")
        batches, token = flush.batches, flush.token
        source = ROLLUP_SOURCES.get(table)
        priors: dict[str, dict[str, Row]] = {}
        if source:
            # 1. what the table held for these events (stored once; a replay reads the first attempt's)
            members = [(b.token, b.objs) for b in batches]
            priors = await self._retrying(table, lambda: self.rollups.snapshot_many(source, members, token))
            self._crash("snapshotted")
        # 2. the rows
        lines = [line for b in batches for line in b.lines]
        rejected, refused_reason = await self._insert_rows(table, lines, token)
        self._crash("inserted")
        refused = {i: err for i, err in rejected}
        if source:
            # 3. the rollup changes of the rows ClickHouse accepted, each batch against its own snapshot
            fed_batches = [(priors.get(b.token, {}), rows) for b, rows in flush.accepted(refused)]
            fed = await self._retrying(FEED_TABLE, lambda: self.rollups.feed_many(source, token, fed_batches))
            telemetry.ROLLUP_CHANGES.labels(table=table).inc(fed)
            self._crash("fed")
        # 4. dead letters
        letters = flush.letters(refused, refused_reason)
        if letters:
            dl_lines = [self._dead_letter_line(tp, off, raw, reason, err) for tp, off, raw, reason, err in letters]
            lost = await self._retrying(
                self.dead_letters, lambda: self.writer.insert_isolating(self.dead_letters, dl_lines, f"{token}/dead")
            )
            for i, err in lost:
                # Not silent, at least: a dead letter ClickHouse refuses is a bug to chase.
                log.error("dead letter for %s@%d refused by ClickHouse: %s", letters[i][0], letters[i][1], err)
            for _, _, _, reason, _ in letters:
                telemetry.DEAD_LETTERS.labels(table=table, reason=reason).inc()
            self._crash("dead_lettered")
        # 5. offsets (of the batches taken from this sink's buffers; re-read ones belong to their partition's owner)
        if flush.owned:
            await self._commit({b.tp: b.last_offset + 1 for b in flush.owned})
        self._crash("committed")
        telemetry.COMMITTED_BATCHES.labels(table=table).inc(len(flush.owned))
        self.landed += sum(len(b) for b in flush.owned)

    async def _complete(self, flush: Flush) -> None:
        """Re-form the batches of a recorded flush that this sink did not take from its buffers: those
        reaching the head of their partition within ``batch_max_wait_ms`` are taken, the others are
        re-read from Kafka (a partition another sink consumes, or one committed past them)."""
        recorded = await self._retrying(BATCHLOG_TABLE, lambda: self.batchlog.members(flush.flush_id))
        have = {(b.tp, b.first_offset) for b in flush.batches}
        missing: list[Range] = [m for m in recorded if (m[0], m[1]) not in have]
        deadline = time.monotonic() + self.settings.batch_max_wait_ms / 1000
        while missing and time.monotonic() < deadline and not self._abort.is_set():
            await asyncio.sleep(0.02)
            for m in list(missing):
                buf = self._buffers.get(m[0])
                head = buf.peek_ready() if buf is not None else None
                if head is not None and head.replay and head.flush == flush.flush_id and head.first_offset == m[1]:
                    flush.owned.append(buf.pop_ready())  # type: ignore[arg-type, union-attr]
                    flush.batches.append(head)
                    missing.remove(m)
        for tp, first, last in missing:
            if self._fetch_range is None:
                raise RuntimeError(f"flush {flush.flush_id} needs {tp}@{first}-{last}, and this sink cannot re-read it")
            records = await self._fetch_range(tp, first, last)
            buf = PartitionBuffer(tp, flush.table, {first: (last, flush.flush_id)}, 2**62, 2**62)
            for r in records:
                if first <= r.offset <= last:
                    self._add(buf, r.offset, r.value, r.timestamp)
            buf.close_if_due(float("inf"), 0)
            if buf.open is not None and len(buf.open):
                buf.closed.append(buf.open)  # its last messages are gone: land what is left, as a consumer would
            flush.batches += list(buf.closed)
            log.info("flush %s: re-read %s@%d-%d from Kafka (%d messages)", flush.flush_id, tp, first, last, len(records))
        flush.batches.sort(key=lambda b: (b.tp.topic, b.tp.partition, b.first_offset))

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
                wait=Backoff(self.settings.retry_backoff_initial_s, self.settings.retry_backoff_max_s),
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

    async def _insert_rows(self, table: str, lines: list[bytes], token: str) -> tuple[list[tuple[int, str]], str]:
        """Step 2: the rows, and the dead-letter reason of those refused. An error of no known kind
        that persists is a poison row: after the bounded retries the flush is bisected with that
        error counted as a refusal, so the good rows land, the poison ones are dead-lettered
        (``clickhouse_error``) and the partitions move on."""
        try:
            rejected = await self._retrying(
                table, lambda: self.writer.insert_isolating(table, lines, token), bounded=True)
            return rejected, "rejected_by_clickhouse"
        except UnknownInsertError as exc:
            log.error("ClickHouse keeps failing on %s with an unknown error; isolating the rows it follows: %s",
                      token, exc)
        rejected = await self._retrying(
            table, lambda: self.writer.insert_isolating(table, lines, token, unknown_is_rejection=True))
        return rejected, "clickhouse_error"

    async def _commit(self, offsets: dict[TopicPartition, int]) -> None:
        try:
            await self.consumer.commit({tp: OffsetAndMetadata(offset, "") for tp, offset in offsets.items()})
            self._committed.update(offsets)
        except (CommitFailedError, IllegalStateError) as exc:
            # A partition moved to another member; it re-reads from the last commit and re-forms
            # these batches from the batch log, so ClickHouse drops the repeat.
            log.warning("commit of %s failed after a rebalance: %s", offsets, exc)
        except KafkaError as exc:
            log.warning("commit of %s failed, will be retried with the next batches: %s", offsets, exc)

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
