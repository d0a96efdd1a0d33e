"""Realistic budget state for enforcement tests: cost rows run through the money library's own
accountant (``BudgetBook``), its ``snapshot()`` published to the real ``budget.state`` topic as the
budget stage publishes it (key ``<budget_id>|<period_key>``, the contract model's JSON)."""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp

from gateledger import jsonutil
from gateledger.clock import utcnow
from gateledger.contracts.budget_state import BudgetStateSnapshot
from gateledger.contracts.events import CostEntry, CostKind
from gateledger.kafka import ensure_gateledger_topics, make_producer, resolve
from gateledger.money.accounting import BudgetBook, snapshot
from gateledger.money.budgets import BudgetSet, parse_budgets, save_budgets
from gateledger.settings import Settings
from gateledger.topics import Topic, topic_name


@dataclass
class OffsetClock:
    """The wall clock moved by ``base`` and ``offset`` (``offset``: so a test can step into the next period)."""

    offset: timedelta = field(default_factory=timedelta)
    base: timedelta = field(default_factory=timedelta)

    def __call__(self) -> datetime:
        return utcnow() + self.base + self.offset

    @classmethod
    def midday(cls) -> OffsetClock:
        """A clock running from 12:00 UTC today: a test's periods are 12 hours from any day boundary,
        so it cannot fail by crossing UTC midnight (or a month end in Europe) while it runs."""
        real = utcnow()
        return cls(base=real.replace(hour=12, minute=0, second=0, microsecond=0) - real)


def write_budgets(path: Path, data: dict[str, Any]) -> BudgetSet:
    """Validate and write a budgets file (as `gateledger budgets add` does)."""
    budgets = parse_budgets(data)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_budgets(path, budgets)
    return budgets


_N = [0]


def cost(amount: str, t: datetime, **kw: Any) -> CostEntry:
    """One priced cost row (LLM unless ``kind`` says otherwise)."""
    _N[0] += 1
    i = _N[0]
    base: dict[str, Any] = dict(id=f"cost-{i}", tenant="acme", time=t, kind=CostKind.LLM, event_id=f"ev-{i}",
                                model="gpt-4o", total_cost_usd=Decimal(amount), price_version="test", computed_at=t)
    base.update(kw)
    return CostEntry(**base)


def snapshots_of(book: BudgetBook, at: datetime) -> list[BudgetStateSnapshot]:
    """Every period state of the book as the snapshot the accountant publishes."""
    return [snapshot(book.budgets[b], s, at) for (b, _), s in sorted(book.states.items())]


async def publish_snapshots(settings: Settings, snaps: list[BudgetStateSnapshot]) -> None:
    """Produce snapshots to this test's ``budget.state`` topic (acks=all)."""
    target = resolve(settings.kafka, settings.core)
    await ensure_gateledger_topics(settings.kafka, target)
    producer = make_producer(settings.kafka, target, linger_ms=0)
    await producer.start()
    try:
        topic = topic_name(Topic.BUDGET_STATE, target.topic_prefix)
        for s in snaps:
            await producer.send_and_wait(topic, jsonutil.dumps(s.model_dump(mode="json")), key=s.key.encode())
    finally:
        await producer.stop()


async def wait_enforcement(base_url: str, snapshots: int, timeout_s: float = 20.0) -> dict[str, Any]:
    """Poll the ingest's /healthz until its budget view caught up and holds ``snapshots`` snapshots."""
    deadline = time.monotonic() + timeout_s
    last: dict[str, Any] = {}
    async with aiohttp.ClientSession() as s:
        while time.monotonic() < deadline:
            try:
                async with s.get(f"{base_url}/healthz") as r:
                    last = (await r.json()).get("enforcement", {})
                    if last.get("caught_up") and last.get("snapshots") == snapshots:
                        return last
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.05)
    raise TimeoutError(f"enforcement view not ready: {last}")
