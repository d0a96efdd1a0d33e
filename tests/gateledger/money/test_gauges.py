"""The scrape-time budget gauges: current period only, falling at rollover and as rolling windows slide,
definitions (limits) from the budgets file, zero for budgets without spend."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from prometheus_client import CollectorRegistry, generate_latest

from gateledger.clock import ManualClock
from gateledger.money.accounting import BudgetBook, snapshot
from gateledger.money.enforcement import EnforcementView
from gateledger.money.gauges import BudgetGaugeCollector
from tests.gateledger.money.test_enforcement import BUDGETS, cost

T = datetime(2026, 3, 10, 16, tzinfo=UTC)


def test_gauges_follow_the_clock_and_the_definitions() -> None:
    book = BudgetBook(BUDGETS)
    book.apply_cost(cost(1, "0.75"), now=T)  # acme-gpt-day (New York day) and acme-watch (UTC day)
    book.apply_cost(cost(2, "2", T - timedelta(hours=1), user_id="bob", model="x"), now=T)  # bob-burst, rolling 6 h
    view = EnforcementView()
    for (bid, _), state in book.states.items():
        view.update(snapshot(book.budgets[bid], state, T))
    clock = ManualClock(T)
    collector = BudgetGaugeCollector(view, clock)
    rows = {r[0]: r[2:] for r in collector.rows(clock())}
    assert rows["acme-gpt-day"][:3] == (0.75, 1.0, 0.75)
    assert rows["acme-watch"][2] == 5.5 and rows["burst"][:3] == (2.0, 3.0, 2.0 / 3)
    assert rows["acme-gpt-day"][3] > rows["acme-gpt-day"][2], "projected above current early in the day"
    # Without definitions only budgets with state show; with them, every budget does (0 spend for ml-team).
    assert "ml-team" not in rows
    view.set_budgets(BUDGETS)
    rows = {r[0]: r[2:] for r in collector.rows(clock())}
    assert rows["ml-team"] == (0.0, 2.0, 0.0, 0.0)
    # The rolling window slides past bob's spend; the New York day rolls over: both fall to 0.
    clock.advance(hours=12, minutes=30)  # 04:30 UTC = 00:30 in New York
    rows = {r[0]: r[2:] for r in collector.rows(clock())}
    assert rows["burst"][0] == 0.0 and rows["acme-gpt-day"][0] == 0.0 and rows["acme-gpt-day"][1] == 1.0
    registry = CollectorRegistry()
    registry.register(collector)
    text = generate_latest(registry).decode()
    assert 'gateledger_budget_utilization_ratio{budget_id="acme-watch",budget_name="acme-watch"} 0.0' in text
