"""Simulated findings, budget alerts and dead letters for the dashboard tests (called by simdata.py)."""

from __future__ import annotations

import random
from datetime import datetime, timedelta
from decimal import Decimal
from typing import TYPE_CHECKING

from gateledger.contracts.events import BudgetAlert, BudgetAlertKind, DeadLetter, Finding, FindingKind
from gateledger.ids import finding_id, stable_id

if TYPE_CHECKING:  # simdata imports this module
    from tests.dashboards.simdata import SimData


def finding(
    sim: SimData,
    tenant: str,
    kind: FindingKind,
    time: datetime,
    interaction_id: str | None,
    ctx: str | None,
    req: str | None,
    user: str,
    client: str,
    evidence: list[str],
) -> None:
    """One finding of ``kind`` (counted in the expected answers)."""
    severity = {"policy_bypass": "critical", "unaudited_llm_call": "high", "orphan_audit": "medium"}.get(
        str(kind), "low"
    )
    sim.add(
        Finding(
            id=finding_id(kind, tenant, *evidence),
            tenant=tenant,
            time=time,
            kind=kind,
            severity=severity,
            interaction_id=interaction_id,
            context_id=ctx,
            request_id=req,
            user_id=user,
            client_id=client,
            description=f"{kind} for {interaction_id or ctx}",
            evidence_event_ids=evidence,
            detected_at=time,
        )
    )
    sim.expected.findings[str(kind)] += 1


def budget_alerts(sim: SimData, tenant: str, now: datetime) -> None:
    """The tenant's daily budget crossing 50, 80 and 100 %, and a projected-exhaustion warning."""
    period_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    period_end = period_start + timedelta(days=1)
    limit = Decimal("25")
    budget_id = f"budget-{tenant}-daily"
    for i, pct in enumerate((50, 80, 100)):
        fired = now - timedelta(minutes=40 - 15 * i)  # the 100 % crossing fired 10 minutes ago
        spend = limit * pct / 100
        sim.add(
            BudgetAlert(
                id=stable_id("ba", budget_id, period_start.isoformat(), "threshold", pct),
                tenant=tenant,
                time=fired,
                budget_id=budget_id,
                budget_name=f"{tenant} daily",
                scope={"tenant": tenant},
                period_start=period_start,
                period_end=period_end,
                kind=BudgetAlertKind.THRESHOLD,
                threshold_pct=pct,
                spend_usd=spend,
                limit_usd=limit,
                utilization=spend / limit,
                action="block" if tenant == "acme" else "alert",
                late=pct == 80 and tenant == "globex",
                fired_at=fired,
            )
        )
    fired = now - timedelta(minutes=5)  # a projected-exhaustion warning, inside the alert rules' window
    sim.add(
        BudgetAlert(
            id=stable_id("ba", budget_id, period_start.isoformat(), "projected", 100),
            tenant=tenant,
            time=fired,
            budget_id=budget_id,
            budget_name=f"{tenant} daily",
            scope={"tenant": tenant},
            period_start=period_start,
            period_end=period_end,
            kind=BudgetAlertKind.PROJECTED,
            threshold_pct=100,
            spend_usd=Decimal("11.5"),
            limit_usd=limit,
            utilization=Decimal("0.46"),
            projected_spend_usd=Decimal("31.2"),
            fired_at=fired,
        )
    )


def dead_letters(sim: SimData, rng: random.Random, tenant: str, start: datetime, span: timedelta) -> None:
    """Four dead letters of the tenant, one per stage and reason (counted in the expected answers)."""
    for i, (stage, reason) in enumerate(
        (
            ("ingest", "schema"),
            ("ingest", "invalid_json"),
            ("sink", "bad_value"),
            ("normalize", "unknown_format"),
        )
    ):
        t = start + timedelta(seconds=rng.uniform(0, span.total_seconds() - 60))
        original = f'{{"broken": {i}}}'
        sim.add(
            DeadLetter(
                id=stable_id("dl", tenant, stage, reason, i),
                tenant=tenant,
                time=t,
                stage=stage,
                origin="http:obot-audit",
                reason=reason,
                error=f"{reason} at record {i}",
                original=original,
                original_sha256=stable_id(original),
                original_size=len(original),
                details={"index": i},
            )
        )
        sim.expected.dead_letters += 1
