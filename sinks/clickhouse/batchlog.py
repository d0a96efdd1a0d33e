"""The batch log: each batch's offset range, recorded durably in ClickHouse before the batch is inserted.

This is the sink's answer to "a batch re-read after a crash with different boundaries gets a
different deduplication token": the first run writes down the range it is about to insert, and any
later run (this process after a restart, or another sink replica after a rebalance) re-forms the
batches starting at its committed offset with exactly those ranges (ClickHouse's Kafka Connect sink
does the same with KeeperMap). On a replicated cluster read it with ``select_sequential_consistency``.

Each range is recorded with its flush (the batches of one table landed together under one token; ''
for a batch landed alone): a replay must land the same batches together again, so ``plan`` returns
every range's flush and ``members`` the ranges of a flush.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from aiokafka import TopicPartition

from gateledger import jsonutil
from gateledger.tables import Table
from sinks.clickhouse.writer import Writer

log = logging.getLogger(__name__)

TABLE = Table.SINK_BATCHES

Range = tuple[TopicPartition, int, int]  # a batch: its partition, first and last offset


class BatchLog:
    """Records and reads back the offset ranges of batches, per topic partition."""

    def __init__(self, writer: Writer, since: datetime | None = None) -> None:
        self.writer = writer
        # Ranges recorded before this belong to an earlier broker (SinkSettings.batch_log_since).
        self.since = since

    def record(self, tp: TopicPartition, first: int, last: int) -> None:
        """Write down one batch's range; returns only once ClickHouse stored it."""
        self.record_many([(tp, first, last)])

    def record_many(self, ranges: list[Range], flush: str = "") -> None:
        """Write down the ranges of every batch of one flush (``flush``: its id, '' for a batch landed
        alone) in one insert; returns once stored."""
        lines = [
            jsonutil.dumps({"topic": tp.topic, "partition": tp.partition, "first_offset": first, "last_offset": last,
                            "flush": flush})
            for tp, first, last in ranges
        ]
        # Not deduplicated: recording is idempotent by content, and a stale dedup entry must never hide it.
        self.writer.insert(TABLE, lines, None)

    def plan(self, tp: TopicPartition, from_offset: int) -> dict[int, tuple[int, str]]:
        """first offset -> (last offset, flush) of every recorded batch not yet entirely before ``from_offset``.

        The earliest record of a range wins: it is the one whose insert may have happened.
        """
        rows = self.writer.query(
            f"SELECT first_offset, argMin((last_offset, flush), recorded_at) FROM {self.writer.qualified(TABLE)}"
            " WHERE topic = {topic:String} AND partition = {partition:UInt32} AND last_offset >= {from:UInt64}"
            " AND recorded_at >= {since:DateTime64(3, 'UTC')}"
            " GROUP BY first_offset ORDER BY first_offset",
            {"topic": tp.topic, "partition": tp.partition, "from": from_offset,
             "since": (self.since or datetime(1970, 1, 1, tzinfo=UTC)).astimezone(UTC).replace(tzinfo=None)},
        )
        plan = {int(first): (int(last), str(flush)) for first, (last, flush) in rows}
        misaligned = [f for f, (last, _) in plan.items() if f < from_offset <= last]
        if misaligned:
            # Only an external offset reset lands inside a recorded range; its repeat cannot be recognised.
            log.warning("%s resumes at %d inside recorded batch %s; that batch is not re-formed",
                        tp, from_offset, misaligned)
            for f in misaligned:
                plan.pop(f)
        return plan

    def members(self, flush: str) -> list[Range]:
        """The ranges recorded with a flush, in the order its inserts concatenated them."""
        rows = self.writer.query(
            f"SELECT DISTINCT topic, partition, first_offset, last_offset FROM {self.writer.qualified(TABLE)}"
            " WHERE flush = {flush:String}",
            {"flush": flush},
        )
        return sorted((TopicPartition(str(t), int(p)), int(f), int(la)) for t, p, f, la in rows)
