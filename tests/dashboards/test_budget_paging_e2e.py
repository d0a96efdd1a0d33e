"""Budget-breach paging end to end, on loopback, every piece real:

budget state (the money library's accountant → the real `budget.state` topic) → the ingest service's
budget view and its `gateledger_budget_*` gauges on `/metrics` → Prometheus (the committed rules) →
Alertmanager (the committed routing) → gateledger's notifier (`POST /alertmanager`) → a local webhook
receiver. The `GateledgerBudgetExceeded` page arrives once, with the budget's labels, and resolves
when the limit is raised in the budgets file; breached again, it pages again (once) and resolves
when the period rolls over.
"""

from __future__ import annotations

import asyncio
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest

from dashboards.alerting_config import RULES_DIR
from gateledger.money.accounting import BudgetBook
from gateledger.money.settings import MoneySettings
from gateledger.settings import Settings
from tests.dashboards.alerting_harness import AlertingHarness, binaries_available
from tests.producers.budgetstate import OffsetClock, cost, publish_snapshots, snapshots_of, write_budgets
from tests.producers.ingest.test_budget_enforcement import serving
from tests.sinks.conftest import running_notifier

pytestmark = pytest.mark.skipif(
    not binaries_available(),
    reason="needs Debian's prometheus and alertmanager (scripts/install-system-deps.sh)",
)

ALERT = "GateledgerBudgetExceeded"


async def stays_inactive(alerting: AlertingHarness, evaluations: int = 2, timeout_s: float = 30) -> None:
    """Nothing can repeat: Prometheus evaluates the rule ``evaluations`` more times and finds it
    inactive every time, and Alertmanager holds no alert of it that it could send again."""
    seen: set[str] = set()
    deadline = time.monotonic() + timeout_s
    while len(seen) <= evaluations:  # the first evaluation seen may predate the call
        [rule] = [r for g in alerting.rule_groups() for r in g["rules"] if r["name"] == ALERT]
        assert rule["state"] == "inactive", rule
        seen.add(rule["lastEvaluation"])
        assert time.monotonic() < deadline, f"Prometheus evaluated the rule only {len(seen)} times"
        await asyncio.sleep(0.1)
    assert not [a for a in alerting.alertmanager_alerts() if a["labels"]["alertname"] == ALERT]


def budgets(limit: str) -> dict[str, Any]:
    return {"budgets": [
        {"name": "acme-month", "scope": {"tenant": "acme"}, "period": "month", "limit_usd": limit},
        {"name": "globex-day", "scope": {"tenant": "globex"}, "period": "day", "limit_usd": "10"},
    ]}


async def pages(alerting: AlertingHarness, status: str, n: int, timeout_s: float = 30) -> list[dict[str, Any]]:
    """Wait until the receiver holds ``n`` notifications with a ``status`` alert of ours."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        found = alerting.receiver.notifications(ALERT, status)
        if len(found) >= n:
            return found
        await asyncio.sleep(0.1)
    raise TimeoutError(f"{n} {status} {ALERT} notifications not received: {alerting.receiver.payloads}")


def test_budget_breach_pages_once_and_resolves(settings: Settings, alerting: AlertingHarness) -> None:
    clock = OffsetClock.midday()  # injected: a month end cannot pass while the test runs
    now = clock()
    path: Path = MoneySettings().budgets_path(settings.core)
    defs = write_budgets(path, budgets("1"))
    book = BudgetBook(defs)
    for amount in ("0.7", "0.5"):
        book.apply_cost(cost(amount, now, tenant="acme", user_id="alice"), now=now)  # 1.2 of 1
    book.apply_cost(cost("1", now, tenant="globex", user_id="gus"), now=now)  # 1 of 10
    snaps = snapshots_of(book, now)

    async def main() -> None:
        await publish_snapshots(settings, snaps)
        async with serving(settings, clock, budget_gauges=True) as ingest, \
                running_notifier(settings, [{"name": "oncall", "url": alerting.receiver.url}]) as relay:
            target = ingest.removeprefix("http://")
            await asyncio.to_thread(
                alerting.start, scrape_targets={"gateledger-ingest": [target]},
                rule_files=sorted(RULES_DIR.glob("*.yml")), webhook_url=f"{relay}/alertmanager",
            )
            started = time.monotonic()
            firing = (await pages(alerting, "firing", 1))[0]
            print(f"paged {time.monotonic() - started:.1f}s after Prometheus started")
            assert firing["receiver"] == "gateledger-budgets" and firing["type"] == "gateledger.alertmanager"
            assert firing["groupLabels"] == {"alertname": ALERT, "budget_id": "acme-month"}
            [alert] = firing["alerts"]
            assert alert["labels"]["budget_id"] == "acme-month" and alert["labels"]["budget_name"] == "acme-month"
            assert alert["labels"]["severity"] == "critical" and alert["labels"]["category"] == "budget"
            assert "120%" in alert["annotations"]["summary"]
            # The gauges Prometheus scraped are the accountant's exact figures (as floats).
            spend = alerting.query('gateledger_budget_spend_usd{budget_id="acme-month"}')
            assert float(spend[0]["value"][1]) == 1.2

            # Raise the limit in the budgets file: the gauge falls at the next scrape, the page resolves.
            write_budgets(path, budgets("2"))
            await pages(alerting, "resolved", 1)
            assert len(alerting.receiver.notifications(ALERT, "firing")) == 1, "paged exactly once"

            # Breached again (limit back to 1): a new page, once; the month rolls over: resolved.
            await asyncio.sleep(0.01)
            write_budgets(path, budgets("1"))
            await pages(alerting, "firing", 2)
            first_of_next = (now.replace(day=1, hour=0, minute=0, second=0, microsecond=0) + timedelta(days=32)).replace(day=1)
            clock.offset = first_of_next - now + timedelta(minutes=5)
            await pages(alerting, "resolved", 2)
            await stays_inactive(alerting)
            assert len(alerting.receiver.notifications(ALERT, "firing")) == 2
            assert len(alerting.receiver.notifications(ALERT, "resolved")) == 2
            budgets_paged = {a["labels"]["budget_id"] for p in alerting.receiver.payloads for a in p["alerts"]}
            assert budgets_paged == {"acme-month"}, "the budget under its limit never pages"

    asyncio.run(main())
