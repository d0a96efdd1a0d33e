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
    """A flush takes the batches of every partition of a table and inserts their rows in one insert; a
    crash after that insert and before its rollup feed, then a run cutting batches differently (so the
    flush must be re-formed from the batch log, its batches gathered from several partitions), still
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
        if seen["rows"] >= 1:
            # The process is dead: nothing lands after the crash.
            raise Crash("already dead")
        client_insert(client, table, body, s)
        if table.endswith("`sink_batches`"):
            recorded.append(body.count(b"\n") + 1)
        if table.endswith("`mcp_calls`"):
            seen["rows"] += 1
            raise Crash("died after the rows of a flush of several partitions, before its rollup feed")

    async def main() -> None:
        messages = [(Topic.MCP_CALLS, e.id, encode(e)) for e in events]
        # keyed by id like the processors publish them: every version of an event in one partition
        messages += [(Topic.MCP_CALLS, e.id, encode(e)) for e in bumped + copies]
        await publish(settings, messages)
        with pytest.raises(Crash):
            async with running_sink(settings, fast_sink(batch_max_rows=1000, batch_max_wait_ms=500),
                                    insert_fn=crashing_insert):
                while seen["rows"] < 1:
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


@pytest.mark.fault
def test_a_flush_whose_batches_another_sink_consumes_is_re_read_and_lands_once(settings: Settings, ch_client) -> None:
    """raw_events is fed by several topics, so one flush holds batches of both raw.obot.mcp and
    raw.obot.llm. The sink dies after the flush's rows and before its landing feed; the next run
    consumes raw.obot.mcp only (as one of several sink replicas would): it must re-read the flush's
    raw.obot.llm batches from Kafka to repeat the same inserts, and commit only its own partitions.
    A last run consuming everything replays the flush once more for raw.obot.llm (re-reading the
    committed raw.obot.mcp batches). Every event lands once and the landing rollup is exact."""
    db = settings.clickhouse.database
    t = "2026-11-20T10:00:00Z"

    def raw(i: int) -> bytes:
        return (b'{"specversion":"1.0","id":"split-%d","source":"obot/t/mcp","type":"obot.mcp.call","tenant":"acme",'
                b'"time":"%s","received_at":"%s","subject":"u","data":{"n":%d}}' % (i, t.encode(), t.encode(), i))

    messages = [(Topic.RAW_OBOT_MCP if i % 2 else Topic.RAW_OBOT_LLM, f"k{i}", raw(i)) for i in range(120)]
    seen = {"rows": 0, "flushes": []}

    def crashing_insert(client: Any, table: str, body: bytes, s: dict[str, Any]) -> None:
        if seen["rows"] >= 1:
            raise Crash("already dead")
        client_insert(client, table, body, s)
        if table.endswith("`sink_batches`"):
            seen["flushes"].append(body)
        if table.endswith("`raw_events`"):
            seen["rows"] += 1
            raise Crash("died after the rows of a flush of both raw topics, before its landing feed")

    async def main() -> None:
        await publish(settings, messages)
        with pytest.raises(Crash):
            async with running_sink(settings, fast_sink(batch_max_rows=1000, batch_max_wait_ms=500,
                                                        topics="raw.obot.mcp,raw.obot.llm"),
                                    insert_fn=crashing_insert):
                while seen["rows"] < 1:
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.5)
        only_mcp = fast_sink(batch_max_rows=30, topics="raw.obot.mcp")
        async with running_sink(settings, only_mcp) as state:
            await wait_caught_up(settings, state["sink"])
        (landed,), = ch_client.query(f"SELECT count() FROM {db}.raw_events").result_rows
        assert landed == 120, "the replay re-read the other topic's batches and repeated the flush's rows"
        async with running_sink(settings, fast_sink(batch_max_rows=30, topics="raw.obot.mcp,raw.obot.llm")) as state:
            await wait_caught_up(settings, state["sink"])

    asyncio.run(main())
    assert any(b"raw.obot.mcp" in f and b"raw.obot.llm" in f for f in seen["flushes"]), "no flush held both topics"
    assert view_counts(ch_client, db, "raw_events") == (120, 120)
    (physical,), = ch_client.query(f"SELECT count() FROM {db}.raw_events").result_rows
    assert physical == 120  # the repeats of the flush's rows were all dropped
    (landings,), = ch_client.query(
        f"SELECT sum(events) FROM {db}.landings_per_minute WHERE output_table = 'raw_events'").result_rows
    assert landings == 120
