"""Arrival order does not change conclusions: sources at different lags, shuffled, duplicated.

Generated multi-tenant traffic is delivered as production delivers it: each source (upstream
system + event type: the AxonFlow pre-checks, its audits, its governance checks, its own audit
trail as the audit poller reads it, Obot's MCP records, the webhook filter) delayed by its own lag up
to the retention window, records in order or not within a source, some delivered twice. Whatever
the order, the final interactions, the findings that stand after retractions, the costs and the
budget alerts, as analysts see them through the views once the sink has landed them in ClickHouse,
equal those of time-ordered delivery (issue 16).
"""

from __future__ import annotations

import random
import uuid
from collections.abc import Iterator
from datetime import timedelta
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from gateledger.clickhouse.client import connect
from gateledger.clickhouse.migrate import migrate
from gateledger.clock import ManualClock
from gateledger.masking import Masker
from gateledger.settings import ClickHouseSettings, CoreSettings
from gateledger.topics import Topic
from producers.accept import Published
from stream_processors.budgets.stage import BudgetPartition, FanoutPartition
from stream_processors.common.emit import Emit
from stream_processors.common.partitioning import partition_for
from stream_processors.common.money_files import MoneyFiles
from stream_processors.cost.stage import LLM, MCP, CostPartition
from stream_processors.local import LocalPipeline
from stream_processors.settings import ProcessorSettings
from tests.stream_processors import traffic
from tests.stream_processors.harness import envelope
from tests.stream_processors.test_logic import close_all, raw, strip
from tests.stream_processors.traffic import T0, Spec
from tests.stream_processors.views import AnalystViews

RETENTION_S = 600.0
JITTER_S = 20.0  # disorder within one source (less than the MCP merge timeout: halves still pair)
SETTINGS = dict(lateness_s=1, idle_advance_s=1, retention_s=RETENTION_S, dedup_window_s=RETENTION_S,
                dedup_bucket_s=60, mcp_merge_timeout_s=60, interaction_timeout_s=60, orphan_grace_s=30,
                unaudited_grace_s=10)
TENANTS = ("acme", "globex", "initech")
BUDGETS = """
budgets:
  - {name: acme-hour, scope: {tenant: acme}, period: rolling, hours: 1, limit_usd: "0.05"}
  - {name: globex-day, scope: {tenant: globex}, period: day, timezone: UTC, limit_usd: "0.08"}
"""


def housekeeping(tenant: str, n: int, at: Any) -> Published:
    return envelope("obot-audit", traffic.housekeeping_record(tenant, n, at), tenant=tenant,
                    received_at=at + traffic.DELAY)


@cache
def scenario(seed: int) -> tuple[tuple[Any, Published], ...]:
    """Every event of a multi-tenant scenario, with its event time, in event-time order."""
    rng = random.Random(seed)
    events: list[tuple[Any, Published]] = []
    for k, tenant in enumerate(TENANTS):
        specs = traffic.mixed(26, seed=seed * 10 + k, spacing_s=30, first_n=1000 * k)
        # Tool calls behind AxonFlow's /decide and MCP checks (joined on the trace), one refused by
        # check-input that ran anyway.
        specs += [Spec(n=1000 * k + 800 + i, t0=T0 + timedelta(seconds=rng.uniform(0, 700)), tools=1 + i,
                       checks=True, check_block=i == 0) for i in range(2)]
        for spec in specs:
            spec.tenant = tenant
            spec.trail = True  # AxonFlow's audit trail logs every audited call (the poller's rows)
            if spec.reject_tool is not None and rng.random() < 0.5:
                spec.filter_decision = "rejected"
            events += traffic.interaction(spec)
        for i in range(3):  # audits whose context no pre-check issued
            at = T0 + timedelta(seconds=rng.uniform(0, 700))
            orphan = Spec(n=1000 * k + 900 + i, t0=at, tenant=tenant)
            events.append((at, traffic.audit(orphan, at, context_id=f"orphan-{tenant}-{i}")))
            hk_at = at + timedelta(seconds=3)
            events.append((hk_at, housekeeping(tenant, 1000 * k + i, hk_at)))
        for i in range(2):  # LLM calls made straight to AxonFlow: in its audit trail only, never tapped
            at = T0 + timedelta(seconds=rng.uniform(0, 700))
            direct = Spec(n=1000 * k + 950 + i, t0=at, tenant=tenant)
            events.append((at, trail(direct, at, f"direct-{tenant}-{i}")))
    events.sort(key=lambda te: (te[0], te[1].envelope.id))
    return tuple(events)


def trail(spec: Spec, at: Any, context_id: str) -> Published:
    """A row of AxonFlow's audit trail, as the audit poller publishes it."""
    return envelope("axonflow-audit-entry", traffic.audit_trail_record(spec, at, context_id), tenant=spec.tenant,
                    received_at=at + timedelta(seconds=30))


def arrival(events: tuple[tuple[Any, Published], ...], rng: random.Random, in_order: bool,
            dup_rate: float) -> list[Published]:
    """The events as delivered: per-source lag, optional disorder within a source, duplicates."""
    lag: dict[tuple[str, str, str], float] = {}
    timed = []
    for t, p in events:
        src = (p.envelope.tenant, p.envelope.source, p.envelope.type)
        if src not in lag:
            lag[src] = rng.choice([0.0, RETENTION_S - JITTER_S, rng.uniform(0, RETENTION_S - JITTER_S)])
        jitter = 0.0 if in_order else rng.uniform(0, JITTER_S)
        at = t.timestamp() + lag[src] + jitter
        timed.append((at, rng.random(), p))
        if rng.random() < dup_rate:
            timed.append((at + rng.uniform(0, JITTER_S), rng.random(), p))
    timed.sort(key=lambda x: (x[0], x[1]))
    return [p for _, _, p in timed]


def standing(pl: LocalPipeline, topic: Topic) -> dict[str, dict]:
    """The rows analysts see: newest version per id, withdrawn ones left out (the views' rule)."""
    return strip({k: r for k, r in pl.final(str(topic)).items() if not r.get("retracted")})


def money(pl: LocalPipeline, tmp: Path) -> list[Emit]:
    """The cost stage and the budget stages over the calls the pipeline emitted (in order): their outputs."""
    (tmp / "budgets.yaml").write_text(BUDGETS)
    files = MoneyFiles(None, None, tmp / "budgets.yaml")
    cost = CostPartition(0, ProcessorSettings(), files, Masker(salt=b"s"), ManualClock(T0))
    for off, e in enumerate(pl.outputs):
        if e.topic in (str(Topic.LLM_CALLS), str(Topic.MCP_CALLS)):
            cost.process(LLM if e.topic == str(Topic.LLM_CALLS) else MCP, e.topic, off, e.value)
    ledger = [e.value for e in cost.out.emits if e.topic == str(Topic.COST_LEDGER)]
    fan = FanoutPartition(0, files, Masker(salt=b"s"))
    for off, v in enumerate(ledger):
        fan.process("cost.ledger", off, v)
    budgets = BudgetPartition(0, files, ManualClock(T0), 7 * 86400)
    contribs = [e.obj for e in fan.out.emits]
    for off in range(0, len(contribs), 50):
        budgets.process(off, orjson.dumps(contribs[off:off + 50]))
    return [*cost.out.emits, *budgets.out.emits]


@pytest.fixture(scope="module")
def views(chdb_path: Path) -> Iterator[AnalystViews]:
    """One migrated chDB database for the module (emptied before each landing)."""
    database = f"gl_arrival_{uuid.uuid4().hex[:8]}"
    ch = ClickHouseSettings(url=f"chdb://{chdb_path}", database=database)
    client = connect(ch, CoreSettings())
    migrate(client, ch)
    yield AnalystViews(client, database)
    client.command(f"DROP DATABASE IF EXISTS `{database}`")
    client.close()


def seen(views: AnalystViews, pl: LocalPipeline, tmp: Path) -> dict[str, Any]:
    """What analysts see once the sink landed a run's outputs (its money stages' included)."""
    views.reset()
    views.land([*pl.outputs, *money(pl, tmp)])
    return views.seen()


def run(items: list[Published], flush_every: int, **overrides: float) -> LocalPipeline:
    pl = LocalPipeline(settings=ProcessorSettings(**(SETTINGS | overrides)), clock=ManualClock(T0))
    pl.feed([raw(p) for p in items], flush_every=flush_every)
    # Until nothing more comes out: what a tick fires (an orphan audit's fact) reaches the correlate
    # stage as a fresh delivery of its source, which holds that tenant's time until the clock moves
    # on again; production's clock always does.
    for _ in range(5):
        produced = len(pl.outputs)
        close_all(pl)
        if len(pl.outputs) == produced:
            break
    return pl


@cache
def reference(seed: int) -> LocalPipeline:
    return run([p for _, p in scenario(seed)], 1000)


COMPARED = (Topic.INTERACTIONS, Topic.FINDINGS, Topic.LLM_CALLS, Topic.MCP_CALLS, Topic.POLICY_DECISIONS,
            Topic.WEBHOOK_DECISIONS)


def costs_and_alerts(money_out: list[Emit]) -> tuple[dict[str, dict], set[tuple]]:
    """Final cost rows and the budget alerts fired, from the money stages' outputs (in memory)."""
    newest: dict[str, dict] = {}
    for e in money_out:
        if e.topic == str(Topic.COST_LEDGER):
            r = orjson.loads(e.value)
            if r["id"] not in newest or r["version"] >= newest[r["id"]]["version"]:
                newest[r["id"]] = r
    # The version counts the call versions priced on the way, which differ with the arrival order.
    costs = {k: {f: x for f, x in r.items() if f not in ("computed_at", "version")} for k, r in newest.items()}
    alerts = {(a["budget_id"], a["period_key"], a["kind"], a["threshold_pct"])
              for a in (orjson.loads(e.value) for e in money_out if e.topic == str(Topic.BUDGET_ALERTS))}
    return costs, alerts


# 12 orders here and 8 through the views below: the 20 orders this test alone drew before.
@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(seed=st.integers(0, 2), order=st.integers(0, 2**32 - 1), in_order=st.booleans(),
       dup_rate=st.sampled_from([0.0, 0.1, 0.3]), flush_every=st.sampled_from([1, 13, 500]))
def test_any_arrival_within_retention_lands_the_same_conclusions(tmp_path: Path, seed: int, order: int,
                                                                 in_order: bool, dup_rate: float,
                                                                 flush_every: int) -> None:
    """The pipeline's outputs (cheap, so many orders); the test below checks the same through the views."""
    ref = reference(seed)
    pl = run(arrival(scenario(seed), random.Random(order), in_order, dup_rate), flush_every)
    for topic in COMPARED:
        assert standing(pl, topic) == standing(ref, topic), topic
    assert costs_and_alerts(money(pl, tmp_path)) == costs_and_alerts(money(ref, tmp_path))


_REFERENCE_SEEN: dict[int, dict[str, Any]] = {}


# No shrinking: every example lands in ClickHouse, so shrinking takes many minutes; the failing example
# is printed whole (seed, order, ...) and replays exactly.
@settings(max_examples=8, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture],
          phases=(Phase.explicit, Phase.reuse, Phase.generate))
@given(seed=st.integers(0, 2), order=st.integers(0, 2**32 - 1), in_order=st.booleans(),
       dup_rate=st.sampled_from([0.0, 0.1, 0.3]), flush_every=st.sampled_from([1, 13, 500]))
def test_any_arrival_within_retention_shows_analysts_the_same_through_the_views(
        views: AnalystViews, tmp_path: Path, seed: int, order: int, in_order: bool, dup_rate: float,
        flush_every: int) -> None:
    """Interactions, findings after retractions, calls, decisions, costs (per row and per interaction)
    and budget alerts, as the views show them once the sink landed every output."""
    if seed not in _REFERENCE_SEEN:
        _REFERENCE_SEEN[seed] = seen(views, reference(seed), tmp_path)
    want = _REFERENCE_SEEN[seed]
    delivered = arrival(scenario(seed), random.Random(order), in_order, dup_rate)
    got = seen(views, run(delivered, flush_every), tmp_path)
    assert want["findings"] and want["cost_ledger"] and want["budget_alerts"]  # something to compare
    for view in want:
        assert got[view] == want[view], view


def test_the_reference_scenario_has_every_kind_of_conclusion(tmp_path: Path) -> None:
    """The property above compares something: the scenario holds each finding kind, costs and alerts,
    and housekeeping MCP calls are calls but not interactions."""
    ref = reference(0)
    kinds = {f["kind"] for f in standing(ref, Topic.FINDINGS).values()}
    assert {"unaudited_llm_call", "orphan_audit", "policy_bypass", "suspect_usage", "untapped_llm_call"} <= kinds
    untapped = {f["context_id"] for f in standing(ref, Topic.FINDINGS).values()
                if f["kind"] == "untapped_llm_call"}
    # Only the calls the tap never saw.
    assert untapped == {f"direct-{t}-{i}" for t in TENANTS for i in range(2)}
    gates = {d["gate"] for d in standing(ref, Topic.POLICY_DECISIONS).values()}
    assert {"decide", "mcp_check_input", "mcp_check_output"} <= gates
    bypassed = [f for f in standing(ref, Topic.FINDINGS).values()
                if f["kind"] == "policy_bypass" and "check-input" in f["description"]]
    assert len(bypassed) == len(TENANTS)
    money_out = money(ref, tmp_path)
    assert any(e.topic == str(Topic.COST_LEDGER) for e in money_out)
    assert any(e.topic == str(Topic.BUDGET_ALERTS) for e in money_out)
    calls = standing(ref, Topic.MCP_CALLS).values()
    hk = {c["id"] for c in calls if c["method"] == "tools/list"}
    assert len(hk) == 9
    interactions = standing(ref, Topic.INTERACTIONS).values()
    assert all(it["llm_calls"] or it["tool_calls"] or it["approved"] is not None for it in interactions)
    assert not hk & {i for it in interactions for i in it["event_ids"]}


def test_a_source_delivered_a_retention_window_late_retracts_what_it_disproves() -> None:
    """Pre-checks first, audits a whole lag later (one file per source): findings raised on the
    pre-checks alone are withdrawn, the orphan audits' calls move to their pre-checks' interactions.
    The scenario spans 13 minutes: the retention window is an hour here, so the whole file is late
    within it."""
    events = scenario(1)
    ref = run([p for _, p in events], 1000, retention_s=3600, dedup_window_s=3600)
    pre = [p for _, p in events if p.envelope.type != "axonflow.llm_audit"]
    aud = [p for _, p in events if p.envelope.type == "axonflow.llm_audit"]
    for first, second in ((pre, aud), (aud, pre)):
        pl = run(first + second, 1000, retention_s=3600, dedup_window_s=3600)
        raised = pl.final(str(Topic.FINDINGS))
        assert any(f["retracted"] for f in raised.values())  # there was something to withdraw
        assert any(i["retracted"] for i in pl.final(str(Topic.INTERACTIONS)).values()) == (first is aud)
        for topic in COMPARED:
            assert standing(pl, topic) == standing(ref, topic), topic


def test_audit_trail_rows_read_before_the_tap_is_delivered_are_withdrawn_when_it_is() -> None:
    """AxonFlow's audit trail (the poller) delivered first, the tap's records an hour later: every
    audited call first looks untapped; the tap's late record of each context withdraws that finding,
    and only the calls made straight to AxonFlow stay untapped."""
    events = scenario(2)
    ref = run([p for _, p in events], 1000, retention_s=3600, dedup_window_s=3600)
    trail_rows = [p for _, p in events if p.envelope.type == "axonflow.audit_entry"]
    rest = [p for _, p in events if p.envelope.type != "axonflow.audit_entry"]
    pl = run(trail_rows + rest, 1000, retention_s=3600, dedup_window_s=3600)
    untapped = {f["id"]: f for f in pl.final(str(Topic.FINDINGS)).values() if f["kind"] == "untapped_llm_call"}
    withdrawn = {f["context_id"] for f in untapped.values() if f["retracted"]}
    # Raised on the trail alone: every row whose time + orphan_grace_s its tenant's trail passed (less
    # lateness; event time is kept per partition) before the tap's records came; each of those that the
    # tap saw is withdrawn.
    def where(p: Published) -> tuple[str, int]:
        return p.envelope.tenant, partition_for(p.key.encode(), pl.partitions)

    newest: dict[tuple[str, int], Any] = {}
    for p in trail_rows:
        newest[where(p)] = max(newest.get(where(p), p.envelope.time), p.envelope.time)
    grace, lateness = timedelta(seconds=SETTINGS["orphan_grace_s"]), timedelta(seconds=SETTINGS["lateness_s"])
    raised = {p.envelope.context_id for p in trail_rows if p.envelope.time + grace <= newest[where(p)] - lateness
              and not p.envelope.context_id.startswith("direct-")}
    assert len(raised) > 40 and withdrawn == raised
    assert {f["context_id"] for f in untapped.values() if not f["retracted"]} == {
        f"direct-{t}-{i}" for t in TENANTS for i in range(2)}
    for topic in COMPARED:
        assert standing(pl, topic) == standing(ref, topic), topic
