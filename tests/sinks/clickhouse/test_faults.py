"""ClickHouse failing for a while, and ClickHouse slow: the real engine, with faults injected around its calls."""

from __future__ import annotations

import asyncio
import time
from typing import Any

import pytest
from clickhouse_connect.driver.exceptions import OperationalError

from gateledger.contracts.events import McpCallStatus
from gateledger.settings import Settings
from sinks.clickhouse import telemetry
from sinks.clickhouse.writer import client_insert, client_query
from tests.sinks.checks import assert_rollups_exact, view_counts
from tests.sinks.conftest import fast_sink, publish_events, running_sink, sink_lag, wait_caught_up
from tests.sinks.events import World


class Faults:
    """Makes every ClickHouse call fail until a deadline, then lets a few inserts land but report failure."""

    def __init__(self) -> None:
        self.down_until = 0.0
        self.lost_replies = 0
        self.failed = 0

    def _check(self) -> None:
        if time.monotonic() < self.down_until:
            self.failed += 1
            raise OperationalError("injected: ClickHouse unavailable")

    def insert(self, client: Any, table: str, body: bytes, settings: dict[str, Any]) -> None:
        self._check()
        client_insert(client, table, body, settings)
        if self.lost_replies > 0 and "sink_batches" not in table:
            # The insert landed but its acknowledgement was lost: the retry must not double anything.
            self.lost_replies -= 1
            self.failed += 1
            raise OperationalError("injected: connection reset after the insert")

    def query(self, client: Any, sql: str, params: dict[str, Any]) -> list[tuple[Any, ...]]:
        self._check()
        return client_query(client, sql, params)


def _retries() -> float:
    return sum(s.value for m in telemetry.RETRIES.collect() for s in m.samples if s.name.endswith("_total"))


@pytest.mark.fault
def test_inserts_failing_for_a_while_lose_nothing_and_double_nothing(settings: Settings, ch_client) -> None:
    db = settings.clickhouse.database
    w = World(seed=4)
    first = [w.mcp_call() for _ in range(150)] + [w.llm_call() for _ in range(100)] + [w.cost() for _ in range(100)]
    during = [w.mcp_call() for _ in range(200)] + [w.cost() for _ in range(100)] + [w.policy() for _ in range(50)]
    versions = [e.model_copy(update={"version": 2, "status": McpCallStatus.FAILURE}) for e in first[:40]]
    dupes = first[100:160] + during[:30]
    faults = Faults()
    retries_before = _retries()

    async def main() -> None:
        async with running_sink(settings, fast_sink(batch_max_rows=100), insert_fn=faults.insert,
                                query_fn=faults.query) as state:
            await publish_events(settings, first)
            await wait_caught_up(settings, state["sink"])
            faults.down_until = time.monotonic() + 5.0
            faults.lost_replies = 6
            await publish_events(settings, during + versions + dupes)
            # The sink meets the outage (an insert failed) and says so, while ClickHouse is still down.
            while not (faults.failed and telemetry.FAILING._value.get() == 1):
                assert time.monotonic() < faults.down_until, "the sink never reported failing during the outage"
                await asyncio.sleep(0.02)
            assert await sink_lag(settings, state["sink"]) > 0, "nothing is committed while ClickHouse is down"
            await wait_caught_up(settings, state["sink"], timeout_s=90)

    asyncio.run(main())
    assert faults.failed > 6 and faults.lost_replies == 0
    assert _retries() - retries_before >= faults.failed
    assert telemetry.FAILING._value.get() == 0
    assert view_counts(ch_client, db, "mcp_calls") == (350, 350)
    assert view_counts(ch_client, db, "cost_ledger") == (200, 200)
    assert view_counts(ch_client, db, "policy_decisions") == (50, 50)
    assert view_counts(ch_client, db, "llm_calls") == (100, 100)
    assert_rollups_exact(ch_client, db, settings)


@pytest.mark.fault
def test_slow_clickhouse_pauses_consumption_and_bounds_the_buffer(settings: Settings, ch_client) -> None:
    db = settings.clickhouse.database
    w = World(seed=5)
    events = [w.mcp_call() for _ in range(1500)]

    def slow_insert(client: Any, table: str, body: bytes, s: dict[str, Any]) -> None:
        time.sleep(0.05)
        client_insert(client, table, body, s)

    sink = fast_sink(batch_max_rows=50, max_buffered_rows=200, fetch_max_records=50)
    peak = 0
    paused_seen = False

    async def main() -> None:
        nonlocal peak, paused_seen
        async with running_sink(settings, sink, insert_fn=slow_insert) as state:
            service = state["service"]
            await publish_events(settings, events)
            deadline = time.monotonic() + 120
            while service.landed < len(events) and time.monotonic() < deadline:
                peak = max(peak, service.buffered())
                paused_seen |= telemetry.PAUSED._value.get() == 1
                await asyncio.sleep(0.01)
            await wait_caught_up(settings, sink)

    asyncio.run(main())
    assert paused_seen, "consumption was paused while ClickHouse lagged"
    assert 0 < peak <= sink.max_buffered_rows + sink.fetch_max_records
    assert telemetry.PAUSED._value.get() == 0
    assert view_counts(ch_client, db, "mcp_calls") == (1500, 1500)
    assert_rollups_exact(ch_client, db, settings)
