"""Prometheus metrics of budgets, named once here (the dashboards use exactly these names).

Labels are budgets, never users: cardinality is bounded by the number of budget definitions.
Gauges show the period that contains "now"; Prometheus values are floats, so these are for
display and alerting only — the ledger and every decision stay exact Decimals.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from prometheus_client import REGISTRY, CollectorRegistry, Counter, Gauge

from gateledger.clock import to_utc
from gateledger.contracts.budget_state import BudgetStateSnapshot
from gateledger.contracts.events import BudgetAlert
from gateledger.money.amounts import add
from gateledger.money.periods import ROLLING_BUCKETS

SPEND = "gateledger_budget_spend_usd"
LIMIT = "gateledger_budget_limit_usd"
UTILIZATION = "gateledger_budget_utilization_ratio"
PROJECTED_UTILIZATION = "gateledger_budget_projected_utilization_ratio"
ALERTS = "gateledger_budget_alerts_total"

METRIC_NAMES = (SPEND, LIMIT, UTILIZATION, PROJECTED_UTILIZATION, ALERTS)


class BudgetMetrics:
    """The budget gauges and the alert counter on one registry."""

    def __init__(self, registry: CollectorRegistry = REGISTRY) -> None:
        labels = ["budget_id", "budget_name"]
        self.spend = Gauge(SPEND, "Spend of the current budget period (rolling: trailing window), USD.", labels,
                           registry=registry)
        self.limit = Gauge(LIMIT, "Budget limit, USD.", labels, registry=registry)
        self.utilization = Gauge(UTILIZATION, "Spend / limit of the current period.", labels, registry=registry)
        self.projected = Gauge(PROJECTED_UTILIZATION,
                               "Spend projected to the period end at the burn rate so far, / limit.", labels,
                               registry=registry)
        self.alerts = Counter(ALERTS, "Budget alerts fired.", ["budget_id", "kind"], registry=registry)

    def observe(self, snap: BudgetStateSnapshot, now: datetime, min_elapsed: Decimal = Decimal("0.1")) -> bool:
        """Set the gauges from a snapshot of the period holding ``now`` (others are ignored). True when set."""
        now = to_utc(now)
        if not snap.period_start <= now < snap.period_end:
            return False
        spend, projected = projection(snap, now, min_elapsed)
        labels = (snap.budget_id, snap.budget_name)
        self.spend.labels(*labels).set(float(spend))
        self.limit.labels(*labels).set(float(snap.limit_usd))
        self.utilization.labels(*labels).set(float(spend / snap.limit_usd))
        self.projected.labels(*labels).set(float(projected / snap.limit_usd))
        return True

    def alert_fired(self, alert: BudgetAlert) -> None:
        self.alerts.labels(alert.budget_id, alert.kind.value).inc()

    def forget(self, budget_id: str, budget_name: str) -> None:
        """Remove a deleted budget's series."""
        for g in (self.spend, self.limit, self.utilization, self.projected):
            try:
                g.remove(budget_id, budget_name)
            except KeyError:
                pass


def projection(snap: BudgetStateSnapshot, now: datetime, min_elapsed: Decimal = Decimal("0.1")) -> tuple[Decimal, Decimal]:
    """(current spend, spend projected to the period end) for the gauges.

    Calendar: spend * period length / max(elapsed, min_elapsed * period length). Rolling: the trailing
    window's spend, projected as itself (a sliding window has no end to project to).
    """
    if snap.period_kind == "rolling":
        e = int((now - snap.period_start).total_seconds() // snap.bucket_seconds)
        spend = add(*(v for i, v in snap.buckets.items() if e - ROLLING_BUCKETS < i <= e))
        return spend, spend
    total = Decimal(int((snap.period_end - snap.period_start).total_seconds()))
    elapsed = max(Decimal(int((now - snap.period_start).total_seconds())), min_elapsed * total, Decimal(1))
    return snap.spend_usd, snap.spend_usd * total / elapsed
