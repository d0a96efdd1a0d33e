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
