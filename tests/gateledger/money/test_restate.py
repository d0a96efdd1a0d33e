"""Restatement: new versions of affected rows after a catalog change, flowing back through the same
accounting (restated amounts replace, affected periods are recomputed, new crossings fire late)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest

from gateledger.contracts.events import BudgetAlertKind, LlmCall, McpCall, McpCallStatus
from gateledger.money.accounting import BudgetBook
from gateledger.money.budgets import parse_budgets
from gateledger.money.catalog import load_catalog
from gateledger.money.cost import MAX_RESTATEMENTS, cost_version, llm_cost, tool_cost
from gateledger.money.restate import RestatementError, latest_versions, reprice, restate

T = datetime(2026, 3, 10, 12, tzinfo=UTC)
BUDGETS = parse_budgets({"budgets": [
    {"name": "acme-day", "scope": {"tenant": "acme"}, "period": "day", "timezone": "Europe/Berlin",
     "limit_usd": "0.01", "thresholds": [50, 100]},
    {"name": "gpt", "scope": {"model": "gpt-*"}, "period": "month", "limit_usd": "100"},
]})


def call(i: int, model: str, t: datetime = T, tokens: int = 1000) -> LlmCall:
    return LlmCall(id=f"l{i}", tenant="acme", time=t, source="s", provider="openai", model=model,
                   input_tokens=tokens, output_tokens=tokens, total_tokens=2 * tokens)


def user_catalog(tmp_path: Path, body: str):  # noqa: ANN201
    f = tmp_path / "prices.yaml"
    f.write_text(body)
    return load_catalog(f)


def test_pricing_a_previously_unknown_model(tmp_path: Path) -> None:
    base = load_catalog()
    rows = [llm_cost(call(i, "gpt-custom", T + timedelta(minutes=i)), base, computed_at=T).entry for i in range(3)]
    rows.append(llm_cost(call(9, "gpt-4o"), base, computed_at=T).entry)
    assert [r.unpriced for r in rows] == [True, True, True, False]
    book = BudgetBook(BUDGETS)
    now = T + timedelta(minutes=5)
    first = [a for r in rows for a in book.apply_cost(r, now=now)]
    assert {(a.budget_id, a.threshold_pct) for a in first} == {("acme-day", 50), ("acme-day", 100)}  # gpt-4o alone: 0.0125
    assert book.state("acme-day", "day:2026-03-10").unpriced == 3

    new_catalog = user_catalog(tmp_path, """
models:
  - provider: openai
    model: gpt-custom
    prices: [{from: "2026-01-01", input: "1.00", output: "2.00"}]
""")
    later = datetime(2026, 3, 12, tzinfo=UTC)
    result = restate(rows, new_catalog, BUDGETS, computed_at=later)
    assert len(result.rows) == 3 and result.unchanged == 1
    for old, new in zip(rows[:3], result.rows, strict=True):
        assert new.id == old.id and new.version == old.version + 1 and new.restated
        assert new.price_version == new_catalog.version and not new.unpriced and new.unpriced_reason is None
        assert new.total_cost_usd == Decimal("0.003") and new.priced_model == "gpt-custom"
    assert result.affected_periods == {("acme-day", "day:2026-03-10"), ("gpt", "month:2026-03")}

    # Restated rows flow through the same accountant: spend replaced, unpriced count cleared.
    alerts = [a for r in result.rows for a in book.apply_cost(r, now=later)]
    day = book.state("acme-day", "day:2026-03-10")
    assert day.spend == Decimal("0.0125") + 3 * Decimal("0.003") and day.unpriced == 0
    assert alerts == [], "both acme-day thresholds had already fired"
    assert book.state("gpt", "month:2026-03").spend == day.spend
    # Re-running the restatement with the same catalog is a no-op.
    again = restate([*rows, *result.rows], new_catalog, BUDGETS, computed_at=later)
    assert again.rows == [] and again.unchanged == 4


def test_a_price_increase_fires_late_alerts_in_the_old_period(tmp_path: Path) -> None:
    cheap = user_catalog(tmp_path, "models: [{provider: openai, model: m1, prices: [{from: 2026-01-01, input: '1', output: '1'}]}]")
    rows = [llm_cost(call(1, "m1"), cheap, computed_at=T).entry]  # 0.002 of a 0.01 budget
    book = BudgetBook(BUDGETS)
    assert book.apply_cost(rows[0], now=T) == []
    dear = user_catalog(tmp_path, "models: [{provider: openai, model: m1, prices: [{from: 2026-01-01, input: '3', output: '3'}]}]")
    later = datetime(2026, 3, 20, tzinfo=UTC)
    res = restate(rows, dear, BUDGETS, computed_at=later)
    alerts = book.apply_cost(res.rows[0], now=later)
    # 0.006 by 13:00 Berlin: 50 % crossed, and the burn rate projects past the limit (both late).
    assert [(a.kind, a.threshold_pct, a.late, a.period_key) for a in alerts] == [
        (BudgetAlertKind.THRESHOLD, 50, True, "day:2026-03-10"),
        (BudgetAlertKind.PROJECTED, 100, True, "day:2026-03-10")]
    assert book.state("acme-day", "day:2026-03-10").spend == Decimal("0.006")


def test_usage_unpriced_rows_are_skipped_and_rounds_are_bounded() -> None:
    cat = load_catalog()
    zero = llm_cost(call(1, "gpt-4o", tokens=0), cat, computed_at=T).entry
    res = restate([zero], cat, BUDGETS, computed_at=T)
    assert res.rows == [] and res.skipped and "zero_usage" in res.skipped[0][1]
    row = llm_cost(call(2, "gpt-4o"), cat, computed_at=T).entry
    worn = row.model_copy(update={"version": cost_version(1, MAX_RESTATEMENTS), "total_cost_usd": Decimal(7)})
    with pytest.raises(RestatementError):
        reprice(worn, cat, T)
    assert latest_versions([row, worn])[0] is worn


def test_tool_rows_follow_their_price(tmp_path: Path) -> None:
    a = user_catalog(tmp_path, "tools: [{server: github, tool: '*', prices: [{from: 2026-01-01, per_call: '0.01'}]}]")
    mcp = McpCall(id="m", tenant="acme", time=T, source="s", method="tools/call", tool_name="search",
                  mcp_server_id="ms1", mcp_server_name="github", status=McpCallStatus.SUCCESS)
    row = tool_cost(mcp, a, computed_at=T)
    assert row is not None
    b = user_catalog(tmp_path, "tools: [{server: github, tool: '*', prices: [{from: 2026-01-01, per_call: '0.02'}]}]")
    new = reprice(row, b, T)
    assert new is not None and new.total_cost_usd == Decimal("0.02") and new.version == row.version + 1
    assert reprice(row, a, T) is None
