"""Event time per tenant and per source (stream_processors/common/watermark.py) and what it decides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from gateledger.clock import ManualClock
from gateledger.topics import Topic
from stream_processors import telemetry
from stream_processors.common.partition_state import WATERMARK, PartitionState
from stream_processors.common.timeutil import to_us
from stream_processors.common.watermark import TenantWatermarks
from tests.stream_processors import traffic
from tests.stream_processors.test_logic import close_all, pipeline, raw
from tests.stream_processors.traffic import T0, Spec

S = 1_000_000


def marks(clock: ManualClock, state: PartitionState | None = None) -> TenantWatermarks:
    return TenantWatermarks(state or PartitionState(0), lateness=1 * S, idle_advance=10 * S, source_idle=60 * S,
                            clock_us=lambda: to_us(clock()))


def test_a_tenant_waits_for_its_slowest_active_source_until_that_source_goes_quiet() -> None:
    clock = ManualClock(T0)
    w = marks(clock)
    w.observe("acme", "poller", 400 * S)
    w.observe("acme", "tap", 1000 * S)
    assert w.value("acme") == 399 * S  # the poller is behind: it holds acme back
    assert w.source_value("acme", "tap") == 999 * S  # waits within the tap run on the tap's own progress
    for k in range(1, 8):  # the tap keeps delivering, the poller says nothing for 70 s
        clock.advance(seconds=10)
        w.observe("acme", "tap", (1000 + k) * S)
    # Quiet beyond source_idle_s: no longer waited for (the tap's next arrival moved acme on).
    assert w.value("acme") == 1006 * S
    w.observe("acme", "poller", 500 * S)  # it is back: never moves time backwards, holds it from here on
    assert w.value("acme") == 1006 * S
    w.observe("acme", "tap", 2000 * S)
    assert w.value("acme") == 1006 * S
    clock.advance(seconds=30)  # everything quiet for longer than idle_advance_s: follow the clock
    assert w.tick() == ["acme"] and w.value("acme") == (2000 - 1 + 20) * S


def test_one_tenant_never_moves_another_tenants_time_and_state_is_per_tenant() -> None:
    clock = ManualClock(T0)
    state = PartitionState(0)
    w = marks(clock, state)
    w.observe("acme", "tap", 1000 * S)
    w.observe("mallory", "tap", 10**12 * S)  # the year 33658
    assert w.value("acme") == 999 * S and w.slowest() == 999 * S
    writes = dict(state.take_writes())
    assert set(writes) == {"w|acme", "w|mallory"} and writes["w|acme"] == {"wm": 999 * S, "s": {"tap": 1000 * S}}
    # Reloaded after a restart: the same progress, every known source counts as just heard from.
    again = marks(clock)
    again.load("w|acme", writes["w|acme"])
    assert again.value("acme") == 999 * S and again.source_value("acme", "tap") == 999 * S
    w.report("normalize")
    lag = telemetry.SOURCE_LAG.labels(stage="normalize", tenant="acme", source="tap")._value.get()
    assert lag == 0 and state.pending_writes() == 0 and WATERMARK == 2


def test_a_future_dated_record_of_one_tenant_leaves_another_tenants_interaction_alone() -> None:
    """Issue 15: a mallory pre-check dated 2999, sent before acme's traffic, changes nothing of acme's."""
    evil = Spec(n=66, t0=datetime(2999, 1, 1, tzinfo=UTC), tenant="mallory", tools=0, audit=False)
    acme = Spec(n=1, t0=T0, tools=2)
    pl = pipeline()
    pl.feed([raw(traffic.precheck(evil, evil.t0))] + [raw(p) for _, p in traffic.interaction(acme)])
    found = [f for f in pl.final(str(Topic.FINDINGS)).values() if f["tenant"] == "acme"]
    assert found == []
    (it,) = [i for i in pl.final(str(Topic.INTERACTIONS)).values() if i["tenant"] == "acme"]
    assert it["complete"] and it["status"] == "ok" and it["llm_calls"] == 1 and it["tool_calls"] == 2


def test_a_complete_interaction_is_emitted_at_once_without_any_watermark_move() -> None:
    pl = pipeline(lateness_s=3600, idle_advance_s=0)  # event time cannot move at all here
    spec = Spec(n=1, t0=T0, tools=1)
    pl.feed([raw(p) for _, p in traffic.interaction(spec)])
    (it,) = pl.final(str(Topic.INTERACTIONS)).values()
    assert it["complete"] and it["close_reason"] == "complete" and it["tool_calls"] == 1
    # One message of facts, one emission per interaction, however many facts it held.
    assert len(pl.by_topic()[str(Topic.INTERACTIONS)]) == 1
    incomplete = pipeline(lateness_s=3600, idle_advance_s=0)
    incomplete.feed([raw(traffic.precheck(spec, T0))])  # still waits for its audit
    assert not incomplete.by_topic().get(str(Topic.INTERACTIONS))


def test_housekeeping_mcp_calls_are_calls_but_never_interactions() -> None:
    def rec(method: str | None, at: datetime, rpc: str | None = "7", **kw: object) -> dict:
        body = {"jsonrpc": "2.0", "method": method} if method else {"jsonrpc": "2.0", "result": {}}
        if rpc and method and not method.startswith("notifications/"):
            body["id"] = int(rpc)
        base = {"subject": "u", "metadata": {"mcpID": "srv"}, "sessionID": "s1", "createdAt": traffic.utc_iso(at)}
        if method:
            base |= {"callType": method, "requestBody": body, "responseStatus": 200, "responseBody": {"result": {}}}
        else:
            base |= {"responseStatus": 200, "responseBody": body, "processingTimeMs": 3}
        if rpc:
            base["requestID"] = rpc
        return base | kw

    records = [rec("initialize", T0, "1"), rec("notifications/initialized", T0, None), rec("tools/list", T0, "2"),
               rec("ping", T0, "3"), rec(None, T0, None),  # a response half that answers no request
               rec("tools/call", T0 + timedelta(seconds=1), "4", callIdentifier="search")]
    pl = pipeline()
    pl.feed([raw(traffic.envelope("obot-audit", r)) for r in records])
    calls = pl.final(str(Topic.MCP_CALLS))
    assert len(calls) == 6
    (it,) = pl.final(str(Topic.INTERACTIONS)).values()
    assert it["tool_calls"] == 1 and it["tools"] == ["search"] and len(it["event_ids"]) == 1


def test_a_bypass_is_withdrawn_when_late_evidence_shows_the_block_did_not_apply() -> None:
    blocked = Spec(n=1, t0=T0, tools=1, blocked=True, audit=False)  # a tool ran 2 s after a blocked pre-check
    pl = pipeline()
    pl.feed([raw(p) for _, p in traffic.interaction(blocked)])
    close_all(pl, timedelta(seconds=30))
    (bypass,) = [f for f in pl.final(str(Topic.FINDINGS)).values() if f["kind"] == "policy_bypass"]
    assert not bypass["retracted"]
    # Read late: the user's request was approved again (new context) 1 s after the block, before the tool.
    again = traffic.precheck_record(Spec(n=1, t0=T0), T0 + timedelta(seconds=1))
    again["response"]["context_id"] = "ctx-1-retry"
    pl.feed([raw(traffic.envelope("axonflow-precheck", again))])
    gone = pl.final(str(Topic.FINDINGS))[bypass["id"]]
    assert gone["retracted"] and gone["version"] > bypass["version"]
    (it,) = pl.final(str(Topic.INTERACTIONS)).values()
    assert it["status"] != "bypass" and it["approved"] is True


def _gauges(stage: str) -> set[tuple[str, ...]]:
    """The (tenant, source) label sets of the source gauges, and (tenant,) of the tenant gauge, for a stage."""
    out: set[tuple[str, ...]] = set()
    for gauge in (telemetry.SOURCE_LAG, telemetry.SOURCE_ACTIVE, telemetry.TENANT_WATERMARK):
        for metric in gauge.collect():
            for sample in metric.samples:
                if sample.labels.get("stage") == stage:
                    out.add(tuple(v for k, v in sorted(sample.labels.items()) if k != "stage"))
    return out


def test_sources_and_tenants_quiet_beyond_retention_are_forgotten_with_their_gauges() -> None:
    """Per-(tenant, source) state and gauges stay bounded by what is live: one backfill file per day
    (a new source name each time) must not leave a source behind forever, nor a tenant that left."""
    clock = ManualClock(T0)
    state = PartitionState(0)
    w = marks(clock, state)
    stage, retention = "prune-test", 3600 * S
    held: set[str] = set()
    for day in range(3):
        w.observe("acme", f"backfill-{day}", (100 + day) * S)  # a backfill, behind the live tap
        w.observe("acme", "tap", (1000 + day * 86400) * S)
        w.observe(f"gone-{day}", "tap", 1000 * S)  # a tenant that sends once
        w.report(stage)
        clock.advance(seconds=86400)
        w.observe("acme", "tap", (1000 + day * 86400 + 1) * S)  # the tap stays live
        before = w.value("acme")
        dropped = w.prune(stage, retention, lambda t: t in held)
        assert w.value("acme") == before  # forgetting never moves time
        assert (f"gone-{day}", None) in dropped and ("acme", f"backfill-{day}") in dropped
        w.report(stage)
    assert set(state.get("w|acme")["s"]) == {"tap"}
    assert {k for k in state.kv} == {"w|acme"}  # the one-off tenants' entries are deleted (persisted as such)
    assert dict(state.take_writes()).get("w|gone-0", "kept") is None
    assert _gauges(stage) == {("tap", "acme"), ("acme",)}
    # A tenant the owner still holds something of is kept (its watermark must go on to fire that).
    held.add("acme")
    clock.advance(seconds=86400)
    assert w.prune(stage, retention, lambda t: t in held) == [] and w.value("acme") > 0
    held.clear()
    assert w.prune(stage, retention, lambda t: t in held) == [("acme", None)] and _gauges(stage) == set()
    # A source still ahead of its tenant's watermark, or holding the tenant's newest event, stays.
    w.observe("initech", "live", 5000 * S)
    w.observe("initech", "ahead", 9000 * S)
    clock.advance(seconds=30)
    w.observe("initech", "live", 5001 * S)
    clock.advance(seconds=4000)
    w.observe("initech", "live", 5002 * S)
    assert w.prune(stage, retention, lambda t: True) == []
    assert set(state.get("w|initech")["s"]) == {"live", "ahead"}
