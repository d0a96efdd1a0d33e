"""The budget gauges computed at scrape time from budget state snapshots (an ``EnforcementView``).

Same names and labels as ``telemetry.BudgetMetrics`` (which sets them when a snapshot changes).
Computing them when Prometheus scrapes means they follow the clock: when a period rolls over, or a
rolling window slides past old spend, the gauges fall at once, without waiting for new spend; and a
limit raised in the budgets file shows at the next scrape. Budgets defined but without spend yet
show 0. Values are floats, for display and alerting only.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from datetime import datetime

from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from gateledger.clock import Clock, to_utc, utcnow
from gateledger.money.amounts import ZERO
from gateledger.money.enforcement import EnforcementView
from gateledger.money.telemetry import LIMIT, PROJECTED_UTILIZATION, SPEND, UTILIZATION, projection

LABELS = ["budget_id", "budget_name"]


class BudgetGaugeCollector(Collector):
    """A Prometheus collector over an enforcement view (register it on a registry)."""

    def __init__(self, view: EnforcementView, clock: Clock = utcnow,
                 refresh: Callable[[], object] | None = None) -> None:
        self.view = view
        self.clock = clock
        self.refresh = refresh  # e.g. re-read the budgets file, so a raised limit shows at once

    def describe(self) -> list[GaugeMetricFamily]:
        # Nothing to declare up front: the series depend on the budgets present at scrape time.
        return []

    def rows(self, now: datetime) -> list[tuple[str, str, float, float, float, float]]:
        """(budget id, name, spend, limit, utilization, projected utilization) per budget at ``now``."""
        now = to_utc(now)
        grouped = self.view.by_budget()
        defs = self.view.budgets
        ids = sorted(set(grouped) | set(defs or {}))
        out = []
        for bid in ids:
            snaps = grouped.get(bid, [])
            if defs is not None and bid in defs:
                name, limit = defs[bid].name, defs[bid].limit_usd
            elif snaps:
                name, limit = snaps[0].budget_name, snaps[0].limit_usd
            else:
                continue
            spend, projected = ZERO, ZERO
            if snaps:
                spend, snap = self.view.spend_now(snaps, now)
                if snap is not None and snap.period_kind != "rolling":
                    spend, projected = projection(snap, now)
                else:
                    projected = spend
            out.append((bid, name, float(spend), float(limit), float(spend / limit), float(projected / limit)))
        return out

    def collect(self) -> Iterator[GaugeMetricFamily]:
        spend = GaugeMetricFamily(SPEND, "Spend of the current budget period (rolling: trailing window), USD.",
                                  labels=LABELS)
        limit = GaugeMetricFamily(LIMIT, "Budget limit, USD.", labels=LABELS)
        util = GaugeMetricFamily(UTILIZATION, "Spend / limit of the current period.", labels=LABELS)
        proj = GaugeMetricFamily(PROJECTED_UTILIZATION,
                                 "Spend projected to the period end at the burn rate so far, / limit.", labels=LABELS)
        if self.refresh is not None:
            self.refresh()
        for bid, name, s, lim, u, p in self.rows(self.clock()):
            spend.add_metric([bid, name], s)
            limit.add_metric([bid, name], lim)
            util.add_metric([bid, name], u)
            proj.add_metric([bid, name], p)
        yield from (spend, limit, util, proj)
