"""The sink on the real broker and real chDB: every table, duplicates and versions, bad rows, rollups."""

from __future__ import annotations

import asyncio
from decimal import Decimal

from gateledger.contracts.events import McpCallStatus
from gateledger.settings import Settings
from gateledger.topics import Topic
from sinks.clickhouse import telemetry
from tests.sinks.checks import ALL_TIME, VIEW_ARGS, assert_rollups_exact, q, view_counts
from tests.sinks.conftest import publish, publish_events, running_sink, wait_caught_up
from tests.sinks.events import World, encode


def test_every_table_lands_latest_versions_once_and_rollups_are_exact(settings: Settings, ch_client) -> None:
    db = settings.clickhouse.database
    w = World(seed=1)
    events = [e for _ in range(40) for e in w.one_of_each()]
    # A processor re-emits some outputs after a crash (same id and version), and re-emits others
    # with a higher version after a late event changed them.
    resent = events[::7]
    mcp_v2 = [e.model_copy(update={"version": 2, "status": McpCallStatus.SUCCESS, "duration_ms": 11}) for e in events
              if e.table == "mcp_calls"][:15]
    cost_v2 = [e.model_copy(update={"version": 2, "restated": True, "total_cost_usd": Decimal("0.000000000007")})
               for e in events if e.table == "cost_ledger"][:10]
    llm_v3 = [e.model_copy(update={"version": 3, "output_tokens": 1, "total_tokens": e.input_tokens + 1})
              for e in events if e.table == "llm_calls"][:5]
    stale_v1 = [e for e in events if e.table == "llm_calls"][:5]  # arrives again after v3: must not win

    async def main() -> None:
        async with running_sink(settings) as state:
            await publish_events(settings, events)
            await wait_caught_up(settings, state["sink"])
            await publish_events(settings, resent + mcp_v2 + cost_v2 + llm_v3)
            await wait_caught_up(settings, state["sink"])
            await publish_events(settings, stale_v1 + resent)
            await wait_caught_up(settings, state["sink"])

    asyncio.run(main())
    for table in ("mcp_calls", "llm_calls", "policy_decisions", "webhook_decisions", "interactions", "cost_ledger",
                  "budget_alerts", "findings", "dead_letters"):
        rows, distinct = view_counts(ch_client, db, table)
        assert rows == distinct == 40, (table, rows, distinct)
    # The latest version wins, to the last decimal.
    v2 = {e.id: e for e in cost_v2}
    got = dict(q(ch_client, f"SELECT id, total_cost_usd FROM {db}.cost_ledger_latest({VIEW_ARGS}) WHERE restated",
                 **ALL_TIME))
    assert got == {i: Decimal("0.000000000007") for i in v2}
    tokens = dict(q(ch_client, f"SELECT id, output_tokens FROM {db}.llm_calls_latest({VIEW_ARGS}) WHERE version = 3",
                    **ALL_TIME))
    assert tokens == {e.id: 1 for e in llm_v3}
    # Values of every type round-trip through JSONEachRow.
    alert = next(e for e in events if e.table == "budget_alerts")
    (scope, util, spend), = q(ch_client, f"SELECT scope, utilization, spend_usd FROM {db}.budget_alerts_latest"
                                          f"({VIEW_ARGS}) WHERE id = {{id:String}}", id=alert.id, **ALL_TIME)
    assert scope == alert.scope and util == alert.utilization and spend == alert.spend_usd
    pd = next(e for e in events if e.table == "policy_decisions" and not e.approved)
    (policies, expires, approved), = q(ch_client, f"SELECT policies, expires_at, approved FROM {db}.policy_decisions_latest"
                                                  f"({VIEW_ARGS}) WHERE id = {{id:String}}", id=pd.id, **ALL_TIME)
    assert policies == pd.policies and approved is False
    assert expires.replace(tzinfo=None) == pd.expires_at.replace(tzinfo=None)
    assert_rollups_exact(ch_client, db, settings)


def test_bad_messages_are_dead_lettered_and_good_ones_around_them_land(settings: Settings, ch_client) -> None:
    db = settings.clickhouse.database
    w = World(seed=2)
    good = [w.mcp_call() for _ in range(30)]
    bad_bool = w.mcp_call()
    refused = encode(bad_bool).replace(b'"request_mutated":false', b'"request_mutated":"maybe"')
    assert refused != encode(bad_bool)
    raw_good = b'{"id":"r1","source":"s","type":"t","tenant":"acme","time":"2026-11-20T10:00:00Z",' \
               b'"received_at":"2026-11-20T10:00:01Z","data":{"k":[1,2]}}'
    raw_bad_time = raw_good.replace(b'"id":"r1"', b'"id":"r2"').replace(b'T10:00:00Z', b'T25:61:00Z')
    # Valid RFC 3339 but before 2000: the table's CHECK constraint refuses it inside ClickHouse.
    raw_too_old = raw_good.replace(b'"id":"r1"', b'"id":"r3"').replace(b'2026-11-20T10:00:00Z', b'1999-12-31T10:00:00Z')
    messages = [(Topic.MCP_CALLS, e.id, encode(e)) for e in good[:10]]
    messages += [
        (Topic.MCP_CALLS, "k", b"{not json"),
        (Topic.MCP_CALLS, "k", b"[1, 2]"),
        (Topic.MCP_CALLS, "k", encode(w.mcp_call()).replace(b'"tenant":"', b'"tenant_":"')),
        (Topic.MCP_CALLS, "k", encode(w.mcp_call()).replace(b'"version":1', b'"version":4294967296')),
        (Topic.MCP_CALLS, "k", None),
        (Topic.MCP_CALLS, bad_bool.id, refused),
        (Topic.RAW_OBOT_MCP, "r", raw_good),
        (Topic.RAW_OBOT_MCP, "r", raw_bad_time),
        (Topic.RAW_OBOT_MCP, "r", raw_too_old),
    ]
    messages += [(Topic.MCP_CALLS, e.id, encode(e)) for e in good[10:]]
    before = telemetry.DEAD_LETTERS.labels(table="mcp_calls", reason="rejected_by_clickhouse")._value.get()

    async def main() -> None:
        async with running_sink(settings) as state:
            await publish(settings, messages)
            await wait_caught_up(settings, state["sink"])

    asyncio.run(main())
    assert view_counts(ch_client, db, "mcp_calls") == (30, 30)
    assert q(ch_client, f"SELECT id, data FROM {db}.raw_events") == [("r1", '{"k":[1,2]}')]
    letters = q(ch_client, f"SELECT reason, kafka_topic, kafka_offset IS NOT NULL, error, original FROM {db}.dead_letters"
                           " ORDER BY reason, error")
    reasons = sorted(r[0] for r in letters)
    assert reasons == ["empty", "invalid_json", "rejected_by_clickhouse", "rejected_by_clickhouse",
                       "row_mapping", "row_mapping", "row_mapping", "row_mapping"]
    assert any("bad time '2026-11-20T25:61:00Z'" in r[3] for r in letters)
    assert any("Constraint `time_set`" in r[3] for r in letters)
    assert all(r[1].endswith(("mcp.calls", "raw.obot.mcp")) and r[2] for r in letters)
    assert any("out of range" in r[3] for r in letters) and any("tenant: missing" in r[3] for r in letters)
    assert any('"request_mutated":"maybe"' in r[4] for r in letters)
    assert telemetry.DEAD_LETTERS.labels(table="mcp_calls", reason="rejected_by_clickhouse")._value.get() == before + 1
    # The refused row is in no rollup either.
    (calls,), = q(ch_client, f"SELECT sum(calls) FROM {db}.usage_per_minute_v({VIEW_ARGS})", **ALL_TIME)
    assert calls == 30
    assert_rollups_exact(ch_client, db, settings)
