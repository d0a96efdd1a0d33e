"""A poison row (ClickHouse fails on it with an error of no known kind, every time) is retried a bounded
number of times, then dead-lettered with its reason while the rows around it land and the partition
moves on; real chDB, real broker."""

from __future__ import annotations

import asyncio

from gateledger.settings import Settings
from gateledger.topics import Topic
from sinks.clickhouse import telemetry
from tests.sinks.checks import q
from tests.sinks.conftest import fast_sink, publish, running_sink, wait_caught_up


def raw(i: str) -> bytes:
    return (b'{"id":"%s","source":"s","type":"t","tenant":"acme","time":"2026-11-20T10:00:00Z",'
            b'"received_at":"2026-11-20T10:00:01Z","data":{"k":1}}' % i.encode())


def test_a_poison_row_is_dead_lettered_after_bounded_retries_and_the_partition_moves_on(
        settings: Settings, ch_client) -> None:
    db = settings.clickhouse.database
    # A column computed at insert that throws on one row: the whole insert fails, nothing written, with
    # code 395 (FUNCTION_THROW_IF_VALUE_IS_NON_ZERO), neither bad data nor unavailability as the sink knows them.
    ch_client.command(f"ALTER TABLE `{db}`.raw_events ADD COLUMN poison_guard UInt8 "
                      f"MATERIALIZED throwIf(id = 'poison-1', 'poison row')")
    messages = [(Topic.RAW_OBOT_MCP, "r", raw(f"good-{i}")) for i in range(10)]
    messages += [(Topic.RAW_OBOT_MCP, "r", raw("poison-1"))]
    messages += [(Topic.RAW_OBOT_MCP, "r", raw(f"good-{i}")) for i in range(10, 20)]
    unknown_before = telemetry.UNKNOWN_ERRORS.labels(table="raw_events")._value.get()
    letters_before = telemetry.DEAD_LETTERS.labels(table="raw_events", reason="clickhouse_error")._value.get()
    sink = fast_sink(unknown_error_attempts=3, retry_backoff_initial_s=0.01, retry_backoff_max_s=0.05)

    async def main() -> None:
        async with running_sink(settings, sink) as state:
            await publish(settings, messages)
            await wait_caught_up(settings, state["sink"], timeout_s=90)  # committed past the poison row
            # Later traffic on the same partition still lands.
            await publish(settings, [(Topic.RAW_OBOT_MCP, "r", raw("after-1"))])
            await wait_caught_up(settings, state["sink"], timeout_s=60)

    asyncio.run(main())
    ids = sorted(r[0] for r in q(ch_client, f"SELECT id FROM `{db}`.raw_events"))
    assert ids == sorted([f"good-{i}" for i in range(20)] + ["after-1"])
    letters = q(ch_client, f"SELECT reason, error, original, kafka_offset IS NOT NULL FROM `{db}`.dead_letters")
    assert len(letters) == 1, letters
    reason, error, original, has_offset = letters[0]
    assert reason == "clickhouse_error" and "poison row" in error and '"poison-1"' in original and has_offset
    assert telemetry.UNKNOWN_ERRORS.labels(table="raw_events")._value.get() - unknown_before >= 3
    assert telemetry.DEAD_LETTERS.labels(table="raw_events", reason="clickhouse_error")._value.get() \
        - letters_before == 1
