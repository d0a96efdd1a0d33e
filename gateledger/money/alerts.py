"""Budget alerts: deterministic ids and the ``BudgetAlert`` rows the accountant emits."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal

from gateledger.clock import to_utc
from gateledger.contracts.budget_state import BudgetContribution
from gateledger.contracts.events import BudgetAlert, BudgetAlertKind
from gateledger.ids import stable_id
from gateledger.money.amounts import ratio
from gateledger.money.budgets import Budget
from gateledger.money.periods import Period


def alert_id(budget_id: str, period_key: str, kind: BudgetAlertKind | str, threshold_pct: int) -> str:
    """The one id an alert of (budget, period, kind, threshold) can ever have."""
    return stable_id("budget_alert", budget_id, period_key, str(kind), threshold_pct)


def make_alert(
    budget: Budget,
    period: Period,
    kind: BudgetAlertKind,
    threshold_pct: int,
    spend: Decimal,
    *,
    contribution: BudgetContribution,
    now: datetime,
    projected_spend: Decimal | None = None,
    fired_at: datetime | None = None,
) -> BudgetAlert:
    """An alert fired by ``contribution`` when the stream has reached ``now`` (late when its period has
    ended by then); ``fired_at`` is the wall-clock time of firing (default ``now``)."""
    now = to_utc(now)
    # Event time of the alert: the triggering event's, kept inside the period it belongs to.
    t = contribution.time if period.contains(contribution.time) else period.start
    return BudgetAlert(
        id=alert_id(budget.id, period.key, kind, threshold_pct),
        tenant=budget.tenant_label,
        time=t,
        budget_id=budget.id,
        budget_name=budget.name,
        scope=budget.scope.labels(),
        period_start=period.start,
        period_end=period.end,
        period_key=period.key,
        kind=kind,
        threshold_pct=threshold_pct,
        spend_usd=spend,
        limit_usd=budget.limit_usd,
        utilization=ratio(spend, budget.limit_usd),
        projected_spend_usd=projected_spend,
        action=budget.action,
        late=now >= period.end,
        triggering_event_id=contribution.event_id,
        fired_at=to_utc(fired_at) if fired_at is not None else now,
    )
