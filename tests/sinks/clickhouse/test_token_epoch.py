"""Deduplication tokens survive re-reads but not re-created topics (regression: silent loss after a topic reset)."""

from __future__ import annotations

from aiokafka import TopicPartition

from sinks.clickhouse.batching import Batch


def _batch(first_ts: int | None) -> Batch:
    b = Batch(TopicPartition("raw.cloudevents", 2), "raw_events", first_offset=0, last_offset=74)
    b.first_timestamp = first_ts
    return b


def test_the_same_messages_give_the_same_token_and_reused_offsets_a_new_one() -> None:
    # A re-read after a crash: the same messages, the same first timestamp -> ClickHouse recognises the repeat.
    assert _batch(1_763_700_000_000).token == _batch(1_763_700_000_000).token
    # The topic re-created (or Tansu restarted): offsets 0-74 again, other messages -> must not be dropped.
    assert _batch(1_763_700_000_000).token != _batch(1_763_700_090_000).token
    assert _batch(None).token == "raw.cloudevents:2:0-74"


def test_batch_log_ranges_of_an_earlier_broker_are_not_replayed(settings, ch_client) -> None:
    """`up` restarts its memory-only broker with offsets from 0: ranges recorded against the old one
    (GATELEDGER_SINK_BATCH_LOG_SINCE before them) must not pin the new broker's batches."""
    from datetime import UTC, datetime, timedelta

    from sinks.clickhouse.batchlog import BatchLog
    from sinks.clickhouse.writer import Writer

    tp = TopicPartition("raw.cloudevents", 1)
    writer = Writer(ch_client, settings.clickhouse.database)
    BatchLog(writer).record(tp, 0, 74)
    assert BatchLog(writer).plan(tp, 0) == {0: (74, "")}  # a sink restart under the same broker replays it
    recorded = datetime.now(UTC)
    assert BatchLog(writer, since=recorded - timedelta(minutes=1)).plan(tp, 0) == {0: (74, "")}
    assert BatchLog(writer, since=recorded + timedelta(seconds=1)).plan(tp, 0) == {}
