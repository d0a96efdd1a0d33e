"""A sink dying between any two flush steps, then restarted with other batch sizes, lands every event
once and keeps the rollups exact. Deterministic: the crash is raised right after a chosen insert
(the process "dies": nothing after it lands or is committed in that run), the next run cuts its
batches differently, so only the batch log's recorded ranges can make the repeats recognisable.
"""

from __future__ import annotations

import asyncio
from typing import Any

import pytest

from gateledger.contracts.events import McpCallStatus
from gateledger.settings import Settings
from gateledger.topics import Topic
from sinks.clickhouse.writer import client_insert
from tests.sinks.checks import assert_rollups_exact, view_counts
from tests.sinks.conftest import fast_sink, publish, running_sink, wait_caught_up
from tests.sinks.events import World, encode


class Crash(BaseException):
    """Stands for SIGKILL: not an Exception, so no retry or error handling catches it."""


@pytest.mark.fault
@pytest.mark.parametrize("after", ["sink_batches", "rollup_prior", "mcp_calls", "rollup_feed", "landing_feed", "dead_letters"])
def test_crash_after_each_step_then_restart_with_other_batch_sizes(settings: Settings, ch_client, after: str) -> None:
    db = settings.clickhouse.database
    w = World(seed=6)
    events = [w.mcp_call() for _ in range(120)]
    bumped = [e.model_copy(update={"version": 2, "status": McpCallStatus.DENIED}) for e in events[:50:3]]
    later = [w.mcp_call() for _ in range(60)] + events[60:80]  # new events and re-sent ones
    later = [e.model_copy(update={"tenant": "acme"}) for e in later]
    seen = {"n": 0}

    def crashing_insert(client: Any, table: str, body: bytes, s: dict[str, Any]) -> None:
        client_insert(client, table, body, s)
        if table.endswith(f"`{after}`"):
            seen["n"] += 1
            if seen["n"] == 2:
                raise Crash(f"died right after inserting into {after}")

    # Every message is keyed alike: one partition, so batch boundaries depend on the sizes alone.
    keyed = [e.model_copy(update={"tenant": "acme"}) for e in events + bumped]
    broken_first = after == "dead_letters"

    async def main() -> None:
        messages = [(type(e).topic, "one-key", encode(e)) for e in keyed]
        if broken_first:
            # dead letters only exist for bad messages: put one in each of the first batches
            for i in (5, 45, 85, 125):
                messages.insert(i, (type(keyed[0]).topic, "one-key", b"{broken"))
        await publish(settings, messages)
        with pytest.raises(Crash):
            async with running_sink(settings, fast_sink(batch_max_rows=40, batch_max_wait_ms=5000),
                                    insert_fn=crashing_insert) as state:
                while seen["n"] < 2:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)
        assert seen["n"] >= 2
        async with running_sink(settings, fast_sink(batch_max_rows=70)) as state:
            await publish(settings, [(type(e).topic, "one-key", encode(e)) for e in later])
            await wait_caught_up(settings, state["sink"])

    asyncio.run(main())
    assert view_counts(ch_client, db, "mcp_calls") == (180, 180)
    assert_rollups_exact(ch_client, db, settings)
    if broken_first:
        (n,), = ch_client.query(f"SELECT uniqExact(kafka_offset) FROM {db}.dead_letters").result_rows
        assert n == 4


@pytest.mark.fault
def test_batches_of_all_partitions_land_in_one_flush_and_survive_a_crash_inside_it(settings: Settings, ch_client) -> None:
    """A flush takes the batches of every partition of a table (one batch-log insert for all of them);
    a crash between two of its batches' row inserts, then a run cutting batches differently, still
    lands every event once, with exact rollups (versions and copies keyed by id, as the processors
    publish them: docs/sink.md says why versions on two partitions are exact only outside a crash)."""
    db = settings.clickhouse.database
    w = World(seed=8)
    events = [w.mcp_call().model_copy(update={"tenant": "acme"}) for _ in range(160)]
    bumped = [e.model_copy(update={"version": 2, "status": McpCallStatus.DENIED}) for e in events[:60:3]]
    copies = events[100:120]
    seen = {"rows": 0}
    recorded: list[int] = []

    def crashing_insert(client: Any, table: str, body: bytes, s: dict[str, Any]) -> None:
        if seen["rows"] >= 2:
            # The process is dead: nothing lands after the crash (the other partitions' batches included).
            raise Crash("already dead")
        client_insert(client, table, body, s)
        if table.endswith("`sink_batches`"):
            recorded.append(body.count(b"\n") + 1)
        if table.endswith("`mcp_calls`"):
            seen["rows"] += 1
            if seen["rows"] == 2:
                raise Crash("died between two batches of one flush")

    async def main() -> None:
        messages = [(Topic.MCP_CALLS, e.id, encode(e)) for e in events]
        # keyed by id like the processors publish them: every version of an event in one partition
        messages += [(Topic.MCP_CALLS, e.id, encode(e)) for e in bumped + copies]
        await publish(settings, messages)
        with pytest.raises(Crash):
            async with running_sink(settings, fast_sink(batch_max_rows=1000, batch_max_wait_ms=500),
                                    insert_fn=crashing_insert):
                while seen["rows"] < 2:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)
        async with running_sink(settings, fast_sink(batch_max_rows=45)) as state:
            await wait_caught_up(settings, state["sink"])

    asyncio.run(main())
    assert max(recorded) > 1, f"no flush recorded more than one partition's batch: {recorded}"
    assert view_counts(ch_client, db, "mcp_calls") == (160, 160)
    (v2,), = ch_client.query(f"SELECT countIf(version = 2) FROM {db}.mcp_calls FINAL").result_rows
    assert v2 == len(bumped)
    assert_rollups_exact(ch_client, db, settings)
