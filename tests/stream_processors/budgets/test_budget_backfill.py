"""A budget added to a running worker counts the spend of its period from before it was added,
exactly once, and a restarted worker does not count it again (real worker, real broker)."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateledger.settings import Settings
from gateledger.topics import Topic
from tests.conftest import Processes
from tests.stream_processors.harness import Worker, ensure_topics, publish, read_outputs, wait_outputs, worker_env
from tests.stream_processors.budgets.test_budget_stage import MONEY_TOPICS, _lag, llm_calls

BUDGET = """
budgets:
  - name: acme-day
    scope: {tenant: acme}
    period: day
    timezone: UTC
    limit_usd: "0.05"
    projection: false
"""
OTHER = """
budgets:
  - name: someone-else
    scope: {tenant: globex}
    period: day
    limit_usd: "1"
"""


def spend(out: Any, budget_id: str) -> Decimal:
    """The budget's spend over all its periods, from the newest snapshot of each period."""
    snaps: dict[str, dict[str, Any]] = {}
    for s in out.all(Topic.BUDGET_STATE):
        if s["budget_id"] == budget_id and (s["period_key"] not in snaps or s["seq"] >= snaps[s["period_key"]]["seq"]):
            snaps[s["period_key"]] = s
    return sum((Decimal(s["spend_usd"]) for s in snaps.values()), Decimal(0))


def wait_spend(settings: Settings, budget_id: str, want: Decimal, worker: Worker, timeout_s: float = 90) -> Any:
    deadline = time.monotonic() + timeout_s
    got = None
    while time.monotonic() < deadline:
        out = asyncio.run(read_outputs(settings, MONEY_TOPICS))
        got = spend(out, budget_id)
        if got == want:
            return out
        time.sleep(0.5)
    raise AssertionError(f"{budget_id} spend {got}, want {want}; log:\n{worker.tail()}")


@pytest.mark.slow
def test_budget_added_while_running_counts_its_earlier_spend_once(
        gl_env: dict[str, str], settings: Settings, processes: Processes, tmp_path: Path) -> None:
    from gateledger.net import free_port

    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(OTHER)
    env = worker_env(gl_env, idle_advance_s=0) | {"GATELEDGER_BUDGETS_FILE": str(budgets)}
    asyncio.run(ensure_topics(settings))
    log = tmp_path / "proc.log"
    # Now, so the calls fall in the budget's current day (the backfill reads from its start), and
    # all of them in the same day.
    now = datetime.now(UTC).replace(microsecond=0)
    if now.hour == 23 and now.minute >= 58:
        time.sleep((now.replace(hour=0, minute=0, second=5) + timedelta(days=1) - now).total_seconds())
        now = datetime.now(UTC).replace(microsecond=0)
    start = max(now - timedelta(seconds=30), now.replace(hour=0, minute=0, second=1))

    w = Worker(processes, env, log, free_port()).start()
    w.wait_ready()
    # 10 calls at $0.006 = $0.06, priced while no budget covers them.
    asyncio.run(publish(settings, llm_calls("before", start, 10)))
    asyncio.run(wait_outputs(settings, lambda o: len(o.final(Topic.COST_LEDGER)) == 10))

    # The budget appears: its day already holds $0.06 = 120 % of its limit.
    budgets.write_text(BUDGET)
    out = wait_spend(settings, "acme-day", Decimal("0.06"), w)
    fired = sorted(a["threshold_pct"] for a in out.final(Topic.BUDGET_ALERTS).values() if a["budget_id"] == "acme-day")
    assert fired == [50, 80, 100]
    assert "gateledger_processor_budget_backfills_total 2.0" in w.metrics()  # the first budget at start, then this

    # Later calls go through the fan-out; rows both paths saw count once.
    asyncio.run(publish(settings, llm_calls("after", start + timedelta(seconds=10), 5)))
    wait_spend(settings, "acme-day", Decimal("0.09"), w)

    # A restarted worker reads the markers: nothing is scanned or counted again.
    w.kill()
    w = Worker(processes, env, log, free_port()).start()
    w.wait_ready()
    asyncio.run(publish(settings, llm_calls("restart", start + timedelta(seconds=20), 1)))
    out = wait_spend(settings, "acme-day", Decimal("0.096"), w)
    # Nothing more may come: every stage's input consumed and committed (see test_budget_stage).
    deadline = time.monotonic() + 60
    while (lag := asyncio.run(_lag(settings, env["GATELEDGER_PROCESSORS_APP_ID"]))) > 0:
        assert time.monotonic() < deadline, f"the worker never caught up (lag {lag}):\n{w.tail()}"
        time.sleep(0.3)
    assert "gateledger_processor_budget_backfills_total 0.0" in w.metrics()
    assert spend(asyncio.run(read_outputs(settings, MONEY_TOPICS)), "acme-day") == Decimal("0.096")
    alerts = [a for a in out.final(Topic.BUDGET_ALERTS).values() if a["budget_id"] == "acme-day"]
    assert sorted(a["threshold_pct"] for a in alerts) == [50, 80, 100]  # each once
