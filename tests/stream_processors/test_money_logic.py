"""Pure logic of the cost and budget stages (no Kafka): re-pricing only on change, and crashes anywhere
in the budget stage's flush replaying to the same spend and the same alert set."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import orjson

from gateledger.clock import ManualClock
from gateledger.contracts.events import CostEntry, LlmCall
from gateledger.masking import Masker
from gateledger.topics import Topic
from stream_processors.budgets.stage import BudgetPartition, FanoutPartition
from stream_processors.common.money_files import MoneyFiles
from stream_processors.cost.stage import LLM, CostPartition
from stream_processors.settings import ProcessorSettings

T0 = datetime(2026, 3, 28, 20, 0, tzinfo=UTC)
BUDGETS = """
budgets:
  - {name: berlin-day, scope: {tenant: acme}, period: day, timezone: Europe/Berlin, limit_usd: "0.05", projection: false}
  - {name: bob-6h, scope: {user: bob}, period: rolling, hours: 6, limit_usd: "0.02"}
  - {name: all-month, period: month, timezone: Europe/Berlin, limit_usd: "0.2"}
"""


def files(tmp_path: Path) -> MoneyFiles:
    (tmp_path / "budgets.yaml").write_text(BUDGETS)
    return MoneyFiles(None, None, tmp_path / "budgets.yaml")


def call(i: int, version: int = 1, **kw: Any) -> bytes:
    base = dict(id=f"llm-{i}", version=version, tenant="acme", time=T0 + timedelta(minutes=7 * i), source="s",
                provider="openai", model="gpt-4o", input_tokens=1200, output_tokens=300, user_id="bob")
    base.update(kw)
    return LlmCall(**base).model_dump_json().encode()


def test_a_newer_call_version_is_repriced_only_when_the_cost_row_changes(tmp_path: Path) -> None:
    cost = CostPartition(0, ProcessorSettings(), files(tmp_path), Masker(salt=b"s"), ManualClock(T0))
    cost.process(LLM, "llm.calls", 0, call(1, user_id=None))
    cost.process(LLM, "llm.calls", 1, call(1, version=2, user_id=None, trace_id="t" * 32, request_id=None))
    cost.process(LLM, "llm.calls", 2, call(1, version=2, user_id=None))  # a replayed duplicate
    cost.process(LLM, "llm.calls", 3, call(1, version=3, user_id="bob"))  # the user is now known
    cost.process(LLM, "llm.calls", 4, call(1, version=1, user_id=None))  # an older version, late
    rows = [orjson.loads(e.value) for e in cost.out.emits if e.topic == str(Topic.COST_LEDGER)]
    # v2 changed only the trace id -> the interaction id moved too (trace root), so it is a new row version;
    # v3 attributes it to bob: new version. The duplicate and the older version: nothing.
    assert [(r["version"] >> 16, r["user_id"]) for r in rows] == [(1, None), (2, None), (3, "bob")]
    assert len({r["id"] for r in rows}) == 1 and {Decimal(r["total_cost_usd"]) for r in rows} == {Decimal("0.006")}
    cost.out.emits.clear()
    cost.process(LLM, "llm.calls", 5, call(2))
    cost.process(LLM, "llm.calls", 6, call(2, version=2, latency_ms=5))  # nothing the cost row says changed
    assert [orjson.loads(e.value)["version"] for e in cost.out.emits] == [1 << 16]


def _run(files_: MoneyFiles, packs: list[bytes], start: int, state: dict[str, Any],
         crash_at: tuple[int, float] | None) -> tuple[dict[str, Any], list[dict[str, Any]], int]:
    """Process packs from ``start`` over persisted ``state``; a crash persists a prefix of one flush."""
    part = BudgetPartition(0, files_, ManualClock(T0), 7 * 86400)
    part.load(sorted(state.items()))
    alerts: list[dict[str, Any]] = []
    for off in range(start, len(packs)):
        part.process(off, packs[off])
        alerts += [orjson.loads(e.value) for e in part.out.emits if e.topic == str(Topic.BUDGET_ALERTS)]
        part.out.emits.clear()
        writes = part.flush()
        if crash_at is not None and crash_at[0] == off:
            writes = writes[:int(len(writes) * crash_at[1])]
        for k, v in writes:
            if v is None:
                state.pop(k, None)
            else:
                state[k] = orjson.loads(orjson.dumps(v))
        if crash_at is not None and crash_at[0] == off:
            return state, alerts, off
    return state, alerts, len(packs)


def test_budget_partition_crashes_anywhere_in_a_flush_replay_to_the_same_spend_and_alerts(tmp_path: Path) -> None:
    f = files(tmp_path)
    rng = random.Random(5)
    cost = CostPartition(0, ProcessorSettings(), f, Masker(salt=b"s"), ManualClock(T0))
    for i in range(60):
        cost.process(LLM, "llm.calls", i, call(rng.randint(0, 40), version=rng.randint(1, 3),
                                               input_tokens=rng.randint(100, 3000)))
    ledger = [e.value for e in cost.out.emits if e.topic == str(Topic.COST_LEDGER)]
    # restatements: a few rows again with the next round and another amount
    for v in ledger[:5]:
        row = CostEntry.model_validate_json(v)
        ledger.append(row.model_copy(update={"version": row.version + 1, "total_cost_usd": Decimal("0.0123"),
                                             "restated": True}).model_dump_json().encode())
    fan = FanoutPartition(0, f, Masker(salt=b"s"))
    for i, v in enumerate(ledger + ledger[:10]):  # and re-deliveries
        fan.process("cost.ledger", i, v)
    contribs = [e.obj for e in fan.out.emits]
    packs = [orjson.dumps(contribs[i:i + 7]) for i in range(0, len(contribs), 7)]

    ref_state, ref_alerts, _ = _run(f, packs, 0, {}, None)
    ref_spend = {k: v["spend"] for k, v in ref_state.items() if k.startswith("p|")}
    ref_fired = {(a["budget_id"], a["period_key"], a["kind"], a["threshold_pct"]) for a in ref_alerts}
    assert len(ref_fired) == len(ref_alerts) >= 4
    for trial in range(25):
        crash = (rng.randrange(len(packs)), rng.random())
        committed = rng.randint(0, crash[0])  # the last committed offset can be anywhere before the crash
        state, alerts, _ = _run(f, packs, 0, {}, (crash[0], crash[1]))
        # replay from the committed offset over what the changelog kept
        state, more, _ = _run(f, packs, committed, state, None)
        spend = {k: v["spend"] for k, v in state.items() if k.startswith("p|")}
        fired = {(a["budget_id"], a["period_key"], a["kind"], a["threshold_pct"]) for a in alerts + more}
        assert spend == ref_spend, trial
        assert fired == ref_fired, trial


def test_backfill_scans_from_the_current_period_and_rescans_only_when_matching_changes() -> None:
    import yaml

    from gateledger.money.budgets import parse_budgets
    from stream_processors.budgets.backfill import matching_key, scan_start

    b = {x.name: x for x in parse_budgets(yaml.safe_load(BUDGETS)).budgets}
    now = datetime(2026, 11, 22, 0, 40, tzinfo=UTC)
    # Berlin's day began at 23:00 UTC; one hour of skew before that.
    assert scan_start([b["berlin-day"]], now) == datetime(2026, 11, 21, 22, 0, tzinfo=UTC)
    # Rolling 6 h: the window reaches further back than the current 6-hour block (00:00).
    assert scan_start([b["bob-6h"]], now) == datetime(2026, 11, 21, 17, 40, tzinfo=UTC)
    assert scan_start([b["berlin-day"], b["all-month"]], now) == datetime(2026, 10, 31, 22, 0, tzinfo=UTC)
    day = b["berlin-day"]
    assert matching_key(day.model_copy(update={"limit_usd": Decimal("9"), "thresholds": (10,)})) == matching_key(day)
    assert matching_key(day.model_copy(update={"timezone": "UTC"})) != matching_key(day)
    assert matching_key(b["bob-6h"]) != matching_key(b["bob-6h"].model_copy(update={"hours": 12}))


def test_the_cost_state_holds_about_its_retention_also_when_that_is_short(tmp_path: Path) -> None:
    # One call every 30 s of event time for 40 minutes under a 120 s retention: a call's key is kept at
    # least the retention (a newer version in it is compared, not repriced) and gone within
    # retention + a quarter of it, so the state holds ~5 keys, not the hour's 80 an hourly bucket kept.
    settings = ProcessorSettings(retention_s=120, lateness_s=0)
    cost = CostPartition(0, settings, files(tmp_path), Masker(salt=b"s"), ManualClock(T0))
    sizes = []
    for i in range(80):
        at = T0 + timedelta(seconds=30 * i)
        cost.process(LLM, "llm.calls", i, call(1000 + i, time=at))
        sizes.append(cost.entries() - 1)  # less the watermark
        kept = [k for k in cost.state.kv if k.startswith("r|")]
        # The call of 120 s ago is still there (exact retention), the one of 150 s + 30 s ago is not.
        if i >= 4:
            assert cost.state.get(_key(1000 + i - 4)) is not None
        if i >= 6:
            assert cost.state.get(_key(1000 + i - 6)) is None, kept
    assert max(sizes) <= 6


def _key(i: int) -> str:
    from gateledger.contracts.events import CostKind
    from gateledger.money.cost import cost_row_id

    return f"r|{cost_row_id(CostKind.LLM, f'llm-{i}')}"
