"""Budget gauges: exactly the agreed names, budgets as labels, the current period only."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from prometheus_client import CollectorRegistry, generate_latest

from gateledger.contracts.events import CostEntry, CostKind
from gateledger.money.accounting import BudgetBook, snapshot
from gateledger.money.budgets import parse_budgets
from gateledger.money.telemetry import BudgetMetrics, projection

T = datetime(2026, 4, 3, tzinfo=UTC)  # day 3 of a 30-day month (10 %)
BUDGETS = parse_budgets({"budgets": [
    {"name": "acme", "period": "month", "limit_usd": "100"},
    {"name": "burst", "period": "rolling", "hours": 6, "limit_usd": "10"},
]})


def test_gauges_and_counter() -> None:
    book = BudgetBook(BUDGETS)
    alerts = book.apply_cost(CostEntry(id="c", tenant="acme", time=T - timedelta(hours=1), kind=CostKind.LLM,
                                       event_id="e", total_cost_usd=Decimal(20), price_version="v", computed_at=T),
                             now=T)
    reg = CollectorRegistry()
    metrics = BudgetMetrics(reg)
    for a in alerts:
        metrics.alert_fired(a)
    for (bid, _), s in book.states.items():
        metrics.observe(snapshot(book.budgets[bid], s, T), T)
    text = generate_latest(reg).decode()
    for name in ("gateledger_budget_spend_usd", "gateledger_budget_limit_usd", "gateledger_budget_utilization_ratio",
                 "gateledger_budget_projected_utilization_ratio", "gateledger_budget_alerts_total"):
        assert f"# TYPE {name.removesuffix('_total')}" in text or f"# TYPE {name}" in text, name
    labels = {"budget_id": "acme", "budget_name": "acme"}
    assert reg.get_sample_value("gateledger_budget_spend_usd", labels) == 20.0
    assert reg.get_sample_value("gateledger_budget_limit_usd", labels) == 100.0
    assert reg.get_sample_value("gateledger_budget_utilization_ratio", labels) == 0.2
    # 20 USD after 3 of 30 days projects to 200 USD: ratio 2.0
    assert reg.get_sample_value("gateledger_budget_projected_utilization_ratio", labels) == 2.0
    assert reg.get_sample_value("gateledger_budget_spend_usd", {"budget_id": "burst", "budget_name": "burst"}) == 20.0
    kinds = {(a.budget_id, a.kind.value) for a in alerts}
    for bid, kind in kinds:
        assert reg.get_sample_value("gateledger_budget_alerts_total", {"budget_id": bid, "kind": kind}) >= 1
    # no user or model labels anywhere: bounded cardinality
    assert "user" not in text and "model=" not in text
    metrics.forget("acme", "acme")
    assert reg.get_sample_value("gateledger_budget_spend_usd", labels) is None


def test_projection_floor_and_past_periods() -> None:
    book = BudgetBook(BUDGETS)
    book.apply_cost(CostEntry(id="c", tenant="a", time=datetime(2026, 4, 1, 0, 30, tzinfo=UTC), kind=CostKind.LLM,
                              event_id="e", total_cost_usd=Decimal(3), price_version="v", computed_at=T), now=T)
    snap = snapshot(book.budgets["acme"], book.state("acme", "month:2026-04"), T)
    early = datetime(2026, 4, 1, 1, tzinfo=UTC)
    spend, projected = projection(snap, early)
    assert spend == 3 and projected == Decimal(30), "no extrapolation from less than 10 % of the period"
    assert not BudgetMetrics(CollectorRegistry()).observe(snap, datetime(2026, 5, 2, tzinfo=UTC))
