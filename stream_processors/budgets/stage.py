"""The budget stages: cost rows fanned out per budget, and each budget's accounting in one partition.

Fan-out (``FanoutPartition``, one partition of ``cost.ledger``): each cost row becomes one
``BudgetContribution`` per budget whose scope it matches (the budgets file as loaded at that
moment), keyed by ``budget_id`` on the internal ``<app_id>-budget-contributions`` topic (packed: one
message per partition and batch, like the facts topic). Stateless.

Accounting (``BudgetPartition``, one partition of the contributions topic): every budget lives in
exactly one partition, so its state is local. Each contribution goes through
``gateledger.money.accounting.apply_contribution`` with its position ``(partition, offset * 1000 +
index in the pack)`` as source, which is what makes a replay after a crash reproduce the same spend.
Outputs per message: the ``BudgetAlert`` rows it fired (``budget.alerts``) and one
``BudgetStateSnapshot`` per period it changed (compacted ``budget.state``, key
``<budget_id>|<period_key>``).

State keys (this partition's slice of the stage's faust table):
  ``w``                        ``{"now": newest contribution event time (us)}``: the accountant's
                               "now" (deterministic on replay: decides which alerts are ``late``)
  ``l|<budget>|<cost id>``     ``{"e": LedgerEntry, "x": drop time us}``: versions of one cost row
  ``p|<budget>|<period key>``  ``PeriodState``
Ledger entries and period states are dropped ``budget_retention_s`` after their period ended (in
the partition's event time); a contribution for a period older than that is ignored (counted).
"""

from __future__ import annotations

from collections import defaultdict
from datetime import datetime
from typing import Any

import orjson
from pydantic import ValidationError

from gateledger.clock import Clock
from gateledger.contracts.budget_state import BudgetContribution, BudgetStateSnapshot
from gateledger.contracts.events import BudgetAlert, CostEntry
from gateledger.deadletter import make_dead_letter
from gateledger.masking import Masker
from gateledger.money.accounting import (
    LedgerEntry,
    PeriodState,
    SourcePos,
    apply_contribution,
    contributions_for,
    snapshot,
)
from gateledger.topics import Topic
from stream_processors import telemetry
from stream_processors.common.emit import Batch, Emit
from stream_processors.common.money_files import MoneyFiles
from stream_processors.common.partition_state import WATERMARK, PartitionState
from stream_processors.common.timeutil import from_us, secs, to_us

FANOUT = "budget-fanout"
STAGE = "budgets"
CONTRIBUTIONS = "budget-contributions"  # logical name of the internal topic
PACK_SLOTS = 1000  # positions per packed message (the runner packs at most 500)
_HOUR_US = 3600 * 1_000_000

_NO_BUDGET = telemetry.SKIPPED.labels(stage=STAGE, reason="budget_removed")
_TOO_OLD = telemetry.SKIPPED.labels(stage=STAGE, reason="beyond_budget_retention")


class FanoutPartition:
    """Cost rows -> contributions keyed by budget id (no state)."""

    def __init__(self, partition: int, files: MoneyFiles, masker: Masker) -> None:
        self.partition = partition
        self.files = files
        self.masker = masker
        self.state = PartitionState(partition)
        self.out = Batch()

    def load(self, items: list[tuple[str, Any]]) -> None:
        """Stateless."""

    def flush(self, suffix: str = "") -> list[tuple[str, Any]]:
        return []

    def entries(self) -> int:
        return 0

    def tick(self) -> None:
        """Nothing timed."""

    def process(self, topic: str, offset: int, value: bytes | None) -> None:
        """One cost row."""
        try:
            cost = CostEntry.model_validate_json(value or b"")
        except ValidationError as exc:
            telemetry.DEAD_LETTERS.labels(stage=FANOUT, reason="schema").inc()
            self.out.row(make_dead_letter(stage="budget", origin=topic, reason="schema",
                                          error=f"not a valid cost row: {exc.errors()[:3]}"[:2000],
                                          original=value or b"", masker=self.masker, kafka_topic=topic,
                                          kafka_partition=self.partition, kafka_offset=offset))
            return
        t = to_us(cost.time)
        for c in contributions_for(self.files.budgets, cost):
            self.out.internal(CONTRIBUTIONS, c.budget_id, c.model_dump(mode="json"), t)


class BudgetPartition:
    """Budget accounting for one partition of the contributions topic."""

    def __init__(self, partition: int, files: MoneyFiles, clock: Clock, retention_s: float) -> None:
        self.partition = partition
        self.files = files
        self.clock = clock
        self.state = PartitionState(partition)
        self.out = Batch()
        self._retention = secs(retention_s)
        self._ledger: dict[str, LedgerEntry] = {}  # parsed cache of l| entries
        self._periods: dict[str, PeriodState] = {}  # parsed cache of p| entries
        self._drops: dict[int, set[str]] = defaultdict(set)  # hour of drop time -> keys
        self._next_drop = 0
        self._dirty: dict[str, None] = {}  # entries changed since the last flush (serialized there)
        self._ledger_drop: dict[str, int] = {}  # ledger key -> drop time
        # (budget id, period key) -> newest snapshot, for the gauges (periods older than a day are pruned)
        self.latest: dict[tuple[str, str], BudgetStateSnapshot] = {}
        self.alerts_fired: list[BudgetAlert] = []  # since the gauges last looked
        self.w: dict[str, int] = {"now": 0}
        self.state.kv["w"] = self.w

    # -- state lifecycle ------------------------------------------------------------------------

    def load(self, items: list[tuple[str, Any]]) -> None:
        """Rebuild from persisted state."""
        kv = self.state.kv
        for key, value in items:
            if key == "w":
                self.w.update(value)
                kv["w"] = self.w
                continue
            kv[key] = value
            if key.startswith("l|"):
                self._ledger_drop[key] = value["x"]
                self._schedule_drop(key, value["x"])
            elif key.startswith("p|"):
                st = PeriodState.model_validate(value)
                self._periods[key] = st
                self._schedule_drop(key, to_us(st.end) + self._retention)

    def flush(self, suffix: str = "") -> list[tuple[str, Any]]:
        # Serialized once per batch, however many contributions changed an entry.
        kv = self.state.kv
        for key in self._dirty:
            if key.startswith("p|"):
                st = self._periods.get(key)
                if st is not None:
                    kv[key] = st.model_dump(mode="json")
            else:
                entry = self._ledger.get(key)
                if entry is not None:
                    kv[key] = {"e": entry.model_dump(mode="json"), "x": self._ledger_drop[key]}
        self._dirty.clear()
        return self.state.take_writes()

    def entries(self) -> int:
        return len(self.state.kv)

    def tick(self) -> None:
        """Nothing timed: periods close in event time, gauges are refreshed by the agent."""

    def _schedule_drop(self, key: str, drop_us: int) -> None:
        self._drops[drop_us - drop_us % _HOUR_US].add(key)

    def _ledger_entry(self, key: str) -> LedgerEntry | None:
        entry = self._ledger.get(key)
        if entry is None:
            raw = self.state.get(key)
            if raw is not None:
                entry = self._ledger[key] = LedgerEntry.model_validate(raw["e"])
        return entry

    # -- processing -----------------------------------------------------------------------------

    def process(self, offset: int, value: bytes | None) -> int:
        """One packed message: a JSON array of contributions."""
        try:
            items = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            items = None
        if not isinstance(items, list):
            # Written by the fan-out only; a bad one is a bug: counted, and the cost rows stay in cost_ledger.
            telemetry.DEAD_LETTERS.labels(stage=STAGE, reason="bad_contribution").inc()
            return 1
        changed: dict[str, tuple[Any, PeriodState]] = {}
        for i, raw in enumerate(items):
            try:
                c = BudgetContribution.model_validate(raw)
            except ValidationError:
                telemetry.DEAD_LETTERS.labels(stage=STAGE, reason="bad_contribution").inc()
                continue
            self._apply(c, SourcePos(self.partition, offset * PACK_SLOTS + i), changed)
        fired_at = self.clock()
        for budget, st in changed.values():
            snap = snapshot(budget, st, fired_at)
            self.out.emits.append(Emit(str(Topic.BUDGET_STATE), snap.key, snap.model_dump_json().encode()))
            cur = self.latest.get((budget.id, snap.period_key))
            if cur is None or cur.seq <= snap.seq:
                self.latest[(budget.id, snap.period_key)] = snap
        self._drop_expired()
        return len(items)

    def _apply(self, c: BudgetContribution, source: SourcePos, changed: dict[str, tuple[Any, PeriodState]]) -> None:
        budget = self.files.budgets.get(c.budget_id)
        if budget is None or budget.id != c.budget_id:
            _NO_BUDGET.inc()
            return
        t_us = to_us(c.time)
        if t_us > self.w["now"]:
            self.w["now"] = t_us
            self.state.touch("w", WATERMARK)
        now_us = self.w["now"]
        periods = budget.spec.periods_touched(c.time)
        last_end = max(to_us(p.end) for p in periods)
        if last_end + self._retention < now_us:
            _TOO_OLD.inc()
            return
        lkey = f"l|{budget.id}|{c.cost_id}"
        pkeys = {p.key: f"p|{budget.id}|{p.key}" for p in periods}
        states = {k: s for k, pk in pkeys.items() if (s := self._periods.get(pk)) is not None}
        t = apply_contribution(budget, self._ledger_entry(lkey), states, c, now=from_us(now_us), source=source,
                               fired_at=self.clock())
        if t.ledger is not None and t.ledger is not self._ledger.get(lkey):
            self._ledger[lkey] = t.ledger
            if lkey not in self._ledger_drop:
                self._ledger_drop[lkey] = last_end + self._retention
                self._schedule_drop(lkey, last_end + self._retention)
            self._dirty[lkey] = None
            self.state.touch(lkey)
        for key, st in t.states.items():
            pk = pkeys[key]
            if pk not in self._periods:
                self._schedule_drop(pk, to_us(st.end) + self._retention)
            self._periods[pk] = st
            self._dirty[pk] = None
            self.state.touch(pk)
            changed[pk] = (budget, st)
        for alert in t.alerts:
            self.out.row(alert, to_us(alert.time))
            self.alerts_fired.append(alert)

    def _drop_expired(self) -> None:
        now = self.w["now"]
        if now < self._next_drop:
            return
        self._next_drop = now + _HOUR_US
        for bucket in [b for b in self._drops if b + _HOUR_US <= now]:
            for key in self._drops.pop(bucket):
                self._ledger.pop(key, None)
                self._ledger_drop.pop(key, None)
                self._periods.pop(key, None)
                self._dirty.pop(key, None)
                self.state.kv.setdefault(key, None)
                self.state.delete(key)

    def now(self) -> datetime:
        return from_us(self.w["now"])
