"""Pure logic of the sink: message checks, batch cutting against a recorded plan, rollup changes."""

from __future__ import annotations

from decimal import Decimal

import orjson
import pytest
from aiokafka import TopicPartition
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from sinks.clickhouse.batching import PartitionBuffer
from sinks.clickhouse.lines import LineCodec, LineError
from sinks.clickhouse.rollups import ROLLUP_SOURCES, compute_feed
from sinks.clickhouse.rows import Column, TableMapping
from sinks.clickhouse.writer import RejectedRows, RetryableInsertError, classify

RAW = TableMapping("raw_events", [
    Column("id", "String", False), Column("tenant", "LowCardinality(String)", False),
    Column("time", "DateTime64(6, 'UTC')", False), Column("data", "String", False),
    Column("kafka_topic", "LowCardinality(String)", False), Column("kafka_partition", "UInt16", False),
    Column("kafka_offset", "UInt64", False), Column("inserted_at", "DateTime64(3, 'UTC')", True),
])
OUT = TableMapping("budget_alerts", [
    Column("id", "String", False), Column("version", "UInt32", False), Column("tenant", "LowCardinality(String)", False),
    Column("time", "DateTime64(6, 'UTC')", False), Column("threshold_pct", "UInt16", False),
    Column("http_status", "Nullable(Int32)", False), Column("inserted_at", "DateTime64(3, 'UTC')", True),
])


def test_codec_refuses_what_clickhouse_would_mangle() -> None:
    codec = LineCodec.for_mapping(OUT)
    ok = {"id": "a", "tenant": "t", "time": "2026-11-20T10:00:00Z", "threshold_pct": 80, "http_status": None}
    assert codec.parse(orjson.dumps(ok)) == ok
    cases = {
        b"": "empty", b"{x": "invalid_json", b"[1]": "row_mapping", b'{"a":1}{"b":2}': "invalid_json",
        orjson.dumps(ok | {"threshold_pct": 70000}): "row_mapping",
        orjson.dumps(ok | {"version": -1}): "row_mapping",
        orjson.dumps(ok | {"http_status": "2**40"}): "row_mapping",
        orjson.dumps(ok | {"time": "2026-11-20T25:61:00Z"}): "row_mapping",
        orjson.dumps(ok | {"id": ""}): "row_mapping",
        orjson.dumps({k: v for k, v in ok.items() if k != "tenant"}): "row_mapping",
        orjson.dumps(ok | {"tenant": {"x": 1}}): "row_mapping",
    }
    for raw, reason in cases.items():
        with pytest.raises(LineError) as err:
            codec.parse(raw)
        assert err.value.reason == reason, raw
    assert codec.parse(orjson.dumps(ok | {"http_status": str(2**31 - 1)}))
    assert codec.encode(b'{"id":"a"}', {"id": "a"}, "t", 1, 5) == b'{"id":"a"}'  # no Kafka columns here


def test_codec_adds_kafka_coordinates_unless_the_payload_has_its_own() -> None:
    codec = LineCodec.for_mapping(RAW)
    raw = b'  {"id":"a","tenant":"t","time":"2026-11-20T10:00:00Z"}'
    line = codec.encode(raw, codec.parse(raw), 'x."y', 3, 42)
    assert orjson.loads(line) == {"kafka_topic": 'x."y', "kafka_partition": 3, "kafka_offset": 42,
                                  "id": "a", "tenant": "t", "time": "2026-11-20T10:00:00Z"}
    own = b'{"id":"a","tenant":"t","time":"2026-11-20T10:00:00Z","kafka_topic":"origin","kafka_offset":null}'
    assert orjson.loads(codec.encode(own, codec.parse(own), "dl", 0, 9)) == {
        "kafka_topic": "origin", "kafka_partition": 0, "kafka_offset": None,
        "id": "a", "tenant": "t", "time": "2026-11-20T10:00:00Z"}


def _fill(buf: PartitionBuffer, offsets: list[int]) -> None:
    for o in offsets:
        batch = buf.batch_for(o)
        batch.lines.append(b"{}")
        buf.added(batch, o, 2)


def _ranges(buf: PartitionBuffer) -> list[tuple[int, int, bool]]:
    out = []
    while (b := buf.pop_ready()) is not None:
        out.append((b.first_offset, b.last_offset, b.replay))
    return out


def test_batches_follow_the_recorded_plan_then_size_limits() -> None:
    tp = TopicPartition("t", 0)
    buf = PartitionBuffer(tp, "x", plan={10: (14, ""), 15: (30, "")}, max_rows=4, max_bytes=10**6)
    _fill(buf, list(range(10, 40)))
    # Recorded ranges are reproduced whatever the size limit; then batches of 4.
    assert _ranges(buf) == [(10, 14, True), (15, 30, True), (31, 34, False), (35, 38, False)]
    assert buf.open is not None and buf.open.first_offset == 39


def test_free_batches_stop_before_a_recorded_range_and_time_never_cuts_a_pinned_one() -> None:
    tp = TopicPartition("t", 0)
    buf = PartitionBuffer(tp, "x", plan={12: (20, "")}, max_rows=100, max_bytes=10**6)
    _fill(buf, [10, 11, 12, 13])
    assert _ranges(buf) == [(10, 11, False)]
    buf.close_if_due(now=10**9, max_wait_s=0)  # a pinned batch ignores the clock...
    assert buf.pop_ready() is None
    _fill(buf, [22])  # ...but closes when a later offset shows its last message is gone
    assert _ranges(buf) == [(12, 13, True)]
    buf.close_if_due(now=10**9, max_wait_s=0)
    assert _ranges(buf) == [(22, 22, False)]


def test_a_batch_behind_a_waiting_one_grows_instead_of_being_cut_on_time() -> None:
    # A flush takes one batch per partition: cut every max_wait_s whatever waits before it, a sink
    # that fell behind would land batches as small as when it kept up, each at a flush's fixed cost.
    buf = PartitionBuffer(TopicPartition("t", 0), "x", plan={}, max_rows=6, max_bytes=10**6)
    _fill(buf, [0, 1])
    buf.close_if_due(now=10**9, max_wait_s=1)
    for wave in ([2, 3], [4, 5]):  # (0, 1) still waits for its flush: the next messages keep one batch
        _fill(buf, wave)
        buf.close_if_due(now=10**9, max_wait_s=1)
    assert _ranges(buf) == [(0, 1, False)]
    buf.close_if_due(now=10**9, max_wait_s=1)  # nothing waits before it any more: it closes on time
    _fill(buf, [6, 7, 8, 9, 10, 11, 12])  # the size limit still cuts, waiting or not
    assert _ranges(buf) == [(2, 5, False), (6, 11, False)]
    buf.close_free()  # shutdown: whatever is open closes
    assert _ranges(buf) == [(12, 12, False)]


def test_batches_close_on_bytes() -> None:
    buf = PartitionBuffer(TopicPartition("t", 0), "x", plan={}, max_rows=100, max_bytes=5)
    _fill(buf, [0, 1, 2, 3, 4])
    assert _ranges(buf) == [(0, 2, False)]


def _mcp(i: str, version: int, status: str = "success", server: str = "s1", ms: int = 10) -> dict:
    return ROLLUP_SOURCES["mcp_calls"].normalize({
        "id": i, "version": version, "tenant": "t", "time": "2026-11-20T10:00:00Z", "status": status,
        "mcp_server_id": server, "tool_name": "x", "user_id": "u", "client_name": "c", "duration_ms": ms})


def test_feed_counts_each_event_once_at_its_newest_version() -> None:
    src = ROLLUP_SOURCES["mcp_calls"]
    prior = {"a": _mcp("a", 1), "b": _mcp("b", 3)}
    batch = [_mcp("a", 2, "failure", "s2"), _mcp("a", 2, "failure", "s2"), _mcp("b", 2), _mcp("c", 1),
             _mcp("c", 1), _mcp("d", 1), _mcp("d", 4, "denied")]
    feed = compute_feed(src, prior, batch)
    signs = sorted((r["sign"], r["mcp_server_id"], r["errors"], r["denied"]) for r in feed)
    # a: v1 retracted, v2 added; b: stale v2 ignored; c: once; d: only v4.
    assert signs == [(-1, "s1", 0, 0), (1, "s1", 0, 0), (1, "s1", 0, 1), (1, "s2", 1, 0)]
    assert sum(r["sign"] * r["calls"] for r in feed) == 2  # c and d are new; a was counted before


def test_feed_of_costs_keeps_decimals_exact() -> None:
    src = ROLLUP_SOURCES["cost_ledger"]

    def cost(v: int, usd: str) -> dict:
        return src.normalize({"id": "x", "version": v, "tenant": "t", "time": "2026-11-20T10:00:00Z", "kind": "llm",
                              "total_cost_usd": usd, "unpriced": False, "input_tokens": 3, "output_tokens": 4})

    feed = compute_feed(src, {"x": cost(1, "0.100000000001")}, [cost(2, "0.3")])
    assert sum(r["sign"] * Decimal(r["cost_usd"]) for r in feed) == Decimal("0.199999999999")
    with pytest.raises(LineError):
        src.normalize({"id": "x", "tenant": "t", "time": "2026-11-20T10:00:00Z", "total_cost_usd": "abc"})


def test_error_classes() -> None:
    assert classify(DatabaseError("Code: 27. DB::Exception: Cannot parse input")) is RejectedRows
    assert classify(DatabaseError("Code: 469. Constraint `time_set` violated")) is RejectedRows
    assert classify(DatabaseError("Code: 241. Memory limit exceeded")) is RetryableInsertError
    assert classify(DatabaseError("Code: 252. Too many parts")) is RetryableInsertError
    assert classify(OperationalError("connection refused")) is RetryableInsertError
    assert classify(DataError("bad value")) is RejectedRows
    assert classify(OSError("broken pipe")) is RetryableInsertError


def test_first_landings_count_each_event_once_whatever_its_copies_and_versions() -> None:
    from sinks.clickhouse.rollups import compute_landings

    src = ROLLUP_SOURCES["mcp_calls"]
    prior = {"a": _mcp("a", 1)}
    batch = [_mcp("a", 2), _mcp("b", 1), _mcp("b", 1), _mcp("b", 2), _mcp("c", 3)]
    assert sorted((r["output_table"], r["tenant"]) for r in compute_landings(src, prior, batch)) == [
        ("mcp_calls", "t"), ("mcp_calls", "t")]
    raw = ROLLUP_SOURCES["raw_events"]
    env = raw.normalize({"id": "e", "tenant": "t", "time": "2026-11-20T10:00:00Z", "source": "obot", "type": "mcp.request"})
    assert env["version"] == 1 and compute_feed(raw, {}, [env]) == []
    assert [(r["source"], r["type"]) for r in compute_landings(raw, {}, [env, env])] == [("obot", "mcp.request")]
    assert compute_landings(raw, {"e": env}, [env]) == []


def test_a_withdrawn_finding_leaves_the_rollups() -> None:
    """A finding counts once while it stands; its retraction (a new version) takes it out, a
    re-delivered retraction changes nothing, and a retraction seen first never counts."""
    src = ROLLUP_SOURCES["findings"]

    def finding(version: int, retracted: bool) -> dict[str, object]:
        return src.normalize({"id": "f1", "version": version, "tenant": "acme", "time": "2026-11-20T10:00:00Z",
                              "kind": "unaudited_llm_call", "retracted": retracted})

    standing, withdrawn = finding(1, False), finding(2, True)
    assert [r["sign"] for r in compute_feed(src, {}, [standing])] == [1]
    assert [(r["sign"], r["outcome"]) for r in compute_feed(src, {"f1": standing}, [withdrawn])] == [
        (-1, "unaudited_llm_call")]
    assert compute_feed(src, {"f1": withdrawn}, [withdrawn]) == []
    assert compute_feed(src, {}, [standing, withdrawn]) == []
