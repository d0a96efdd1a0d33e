"""The enforcement read model: is a ``block`` budget exhausted for this request's scope, right now?

The budget accountant publishes a ``BudgetStateSnapshot`` after every change of a period's state
to the compacted ``budget.state`` topic (key ``budget_id|period_key``). The ingest service consumes
that topic from the beginning into an ``EnforcementView`` (memory: one small record per budget
period still open) and asks ``check(scope, now)`` on each Obot webhook-filter call and AxonFlow
pre-check: a dictionary lookup and a few comparisons, no I/O.

Semantics:
* Only budgets with ``action: block`` block. A budget applies to a request when every dimension
  its scope constrains is known for the request and matches; a dimension the request does not
  carry (e.g. the model at pre-check time) makes the budget not apply — never a false block.
* Calendar budgets are exhausted when the spend of the period that contains ``now`` has reached
  the limit. Rolling budgets when the trailing window ending at ``now``'s bucket has.
* The view is as fresh as the accountant's lag: a burst can overshoot by what is in flight. The
  ingest exposes the view's age (``age_seconds``) so operators can alert on staleness.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from fnmatch import fnmatchcase
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from gateledger.clock import to_utc
from gateledger.contracts.budget_state import BudgetStateSnapshot
from gateledger.contracts.wire.axonflow import BUDGET_BLOCK_STATUS, GoFloat, budget_block_body
from gateledger.money.amounts import ZERO, add, canonical
from gateledger.money.budgets import DIMENSIONS, Budget, BudgetSet, Scope
from gateledger.money.names import loose
from gateledger.money.periods import ROLLING_BUCKETS
from gateledger.money.teams import TeamDirectory


@dataclass(frozen=True)
class RequestScope:
    """What the ingest knows about a request when it must decide (any field may be unknown)."""

    tenant: str | None = None
    team: str | None = None
    user: str | None = None
    client: str | None = None
    mcp_server: str | None = None
    model: str | None = None

    def with_team(self, teams: TeamDirectory) -> RequestScope:
        """The same scope with the user's team filled in from the teams file."""
        if self.team or not self.user:
            return self
        return RequestScope(self.tenant, teams.team_of(self.user), self.user, self.client, self.mcp_server,
                            self.model)


def scope_applies(scope: dict[str, list[str]], request: RequestScope) -> bool:
    """Whether a budget scope covers a request (unknown constrained dimensions: it does not)."""
    for dim in DIMENSIONS:
        allowed = scope.get(dim)
        if not allowed:
            continue
        value = getattr(request, dim)
        if not value or not Scope.value_matches(dim, tuple(allowed), [value]):
            return False
    return True


@dataclass(frozen=True)
class EnforcementDecision:
    """The answer for one request."""

    blocked: bool
    budget_id: str | None = None
    budget_name: str | None = None
    spend_usd: Decimal | None = None
    limit_usd: Decimal | None = None
    period_key: str | None = None
    period_end: datetime | None = None
    reason: str | None = None

    HTTP_STATUS_BLOCKED = BUDGET_BLOCK_STATUS  # what AxonFlow answers for a budget block

    def budget_info(self) -> dict[str, Any] | None:
        """AxonFlow's ``BudgetInfo`` for this decision, in its struct's field order.

        getaxonflow/axonflow platform/agent/gateway_handlers.go, ``type BudgetInfo``: ids are
        ``omitempty``, ``used_usd`` / ``limit_usd`` / ``percentage`` are float64 (always present).
        The amounts become floats here, at the wire boundary only: that is AxonFlow's format.
        """
        if self.budget_id is None or self.limit_usd is None or self.spend_usd is None:
            return None
        info: dict[str, Any] = {}
        if self.budget_id:
            info["budget_id"] = self.budget_id
        if self.budget_name:
            info["budget_name"] = self.budget_name
        percentage = self.spend_usd * 100 / self.limit_usd if self.limit_usd else Decimal(0)
        info |= {"used_usd": GoFloat(self.spend_usd), "limit_usd": GoFloat(self.limit_usd),
                 "percentage": GoFloat(percentage), "exceeded": self.blocked, "action": "block"}
        return info

    def axonflow_precheck(self, *, context_id: str | None = None, now_ns: int | None = None) -> dict[str, Any]:
        """AxonFlow's own pre-check response for this decision (HTTP 402 when blocked)."""
        if not self.blocked:
            return {"approved": True}
        return budget_block_body(self.reason, self.budget_info(), context_id=context_id, now_ns=now_ns)


ALLOW = EnforcementDecision(blocked=False)


def _is_glob(v: str) -> bool:
    return any(c in v for c in "*?[")


@dataclass(frozen=True)
class _Rule:
    """A budget's action, limit and scope, compiled for fast matching (the same semantics as
    ``scope_applies``: every constrained dimension must be known and match)."""

    action: str
    limit: Decimal
    name: str
    kind: str
    window: int | None
    dims: tuple[tuple[str, frozenset[str], tuple[str, ...]], ...]  # (dimension, exact values, globs)

    @classmethod
    def compile(cls, action: str, limit: Decimal, name: str, kind: str, window: int | None,
                scope: dict[str, Any]) -> _Rule:
        dims = []
        for dim in DIMENSIONS:
            allowed = scope.get(dim)
            if not allowed:
                continue
            values = [loose(a) if dim == "model" else a for a in allowed]
            # Models compare as globs always (fnmatch on the loose form), as Scope.value_matches does.
            exact = frozenset(v for v in values if not _is_glob(v))
            globs = tuple(v for v in values if _is_glob(v))
            dims.append((dim, exact, globs))
        return cls(action, limit, name, kind, window, tuple(dims))

    @classmethod
    def of_budget(cls, b: Budget) -> _Rule:
        return cls.compile(b.action, b.limit_usd, b.name, b.period.value, b.spec.window_seconds or None,
                           dict(b.scope.constrained()))

    @classmethod
    def of_snapshot(cls, s: BudgetStateSnapshot) -> _Rule:
        return cls.compile(s.action, s.limit_usd, s.budget_name, s.period_kind, s.window_seconds or None, s.scope)

    def applies(self, request: RequestScope) -> bool:
        for dim, exact, globs in self.dims:
            value = getattr(request, dim)
            if not value:
                return False
            if dim == "model":
                value = loose(value)
            if value in exact:
                continue
            if globs and any(fnmatchcase(value, g) for g in globs):
                continue
            return False
        return True


@dataclass
class EnforcementView:
    """Latest budget snapshots in memory, answering block decisions."""

    grace: timedelta = timedelta(days=1)  # keep ended periods this long (late spend may still land)
    snapshots: dict[str, BudgetStateSnapshot] = field(default_factory=dict)
    last_update: datetime | None = None
    # The current budget definitions, when known (the budgets file). They decide action, scope and
    # limit; snapshots only give spend. So a raised limit, a budget switched to `alert` or deleted
    # unblocks at once: a blocked scope produces no new cost, hence no new snapshot to carry it.
    budgets: dict[str, Budget] | None = None
    # budget id -> {key -> snapshot}, and each budget's compiled rule: a decision walks budgets,
    # not snapshots, and matches scopes without building anything.
    _index: dict[str, dict[str, BudgetStateSnapshot]] = field(default_factory=dict, repr=False)
    _defs: dict[str, _Rule] | None = field(default=None, repr=False)
    _from_snaps: dict[str, _Rule] = field(default_factory=dict, repr=False)
    # (budget id, rule, its snapshots) of every block budget, rebuilt only when budgets or keys change.
    _block: list[tuple[str, _Rule, dict[str, BudgetStateSnapshot]]] | None = field(default=None, repr=False)

    def set_budgets(self, budgets: BudgetSet | None) -> None:
        """Use these definitions (None: trust the snapshots' own action, scope and limit)."""
        self.budgets = None if budgets is None else {b.id: b for b in budgets.budgets}
        self._defs = None if budgets is None else {b.id: _Rule.of_budget(b) for b in budgets.budgets}
        self._block = None

    def update(self, snap: BudgetStateSnapshot) -> bool:
        """Take a snapshot; an older one (lower seq) for the same key is ignored. True when applied."""
        current = self.snapshots.get(snap.key)
        if current is not None and current.seq >= snap.seq:
            return False
        self.snapshots[snap.key] = snap
        self._index.setdefault(snap.budget_id, {})[snap.key] = snap
        rule = _Rule.of_snapshot(snap)
        if current is None or self._from_snaps.get(snap.budget_id) != rule:
            self._block = None
        self._from_snaps[snap.budget_id] = rule
        self.last_update = snap.updated_at
        return True

    def remove(self, key: str) -> None:
        """Forget a key (a tombstone on the compacted topic)."""
        snap = self.snapshots.pop(key, None)
        if snap is not None:
            self._block = None
            per = self._index.get(snap.budget_id, {})
            per.pop(key, None)
            if not per:
                self._index.pop(snap.budget_id, None)
                self._from_snaps.pop(snap.budget_id, None)

    def age_seconds(self, now: datetime) -> float | None:
        """Seconds since the newest snapshot was produced."""
        return None if self.last_update is None else (to_utc(now) - self.last_update).total_seconds()

    def prune(self, now: datetime) -> int:
        """Drop snapshots of periods that ended more than ``grace`` ago; returns how many."""
        now = to_utc(now)
        old = [k for k, s in self.snapshots.items() if s.period_end + self.grace < now]
        for k in old:
            self.remove(k)
        return len(old)

    def _rule(self, budget_id: str, snaps: dict[str, BudgetStateSnapshot]) -> _Rule | None:
        """The budget's rule now; None when the definitions no longer have it or its period kind changed
        (its snapshots no longer describe one of its periods)."""
        if self._defs is None:
            return self._from_snaps.get(budget_id)
        rule = self._defs.get(budget_id)
        if rule is None:
            return None
        sample = next(iter(snaps.values()))
        if rule.kind != sample.period_kind or rule.window != (sample.window_seconds or None):
            return None
        return rule

    def _trailing_spend(self, snaps: list[BudgetStateSnapshot], now: datetime) -> tuple[Decimal, BudgetStateSnapshot]:
        """Rolling budgets: spend of the window ending at now's bucket, from the block holding now
        (or, when it has no state yet, the previous block's tail)."""
        length = snaps[0].window_seconds or 0
        own = next((s for s in snaps if s.period_start <= now < s.period_end), None)
        if own is not None:
            buckets, start = own.buckets, own.period_start
        else:
            prev = next((s for s in snaps if s.period_end <= now < s.period_end + timedelta(seconds=length)), None)
            if prev is None:
                return ZERO, snaps[0]
            buckets = {i - ROLLING_BUCKETS: v for i, v in prev.buckets.items() if i >= 0}
            start = prev.period_end
            own = prev
        e = int((now - start).total_seconds() // own.bucket_seconds)
        return add(*(v for i, v in buckets.items() if e - ROLLING_BUCKETS < i <= e)), own

    def spend_now(self, snaps: list[BudgetStateSnapshot], now: datetime) -> tuple[Decimal, BudgetStateSnapshot | None]:
        """Spend of one budget at ``now`` from its snapshots, and the snapshot it came from (None: no
        state covers now, i.e. nothing spent yet in the current period)."""
        if snaps[0].period_kind == "rolling":
            spend, snap = self._trailing_spend(snaps, now)
            return spend, (snap if spend or snap.period_start <= now < snap.period_end + timedelta(
                seconds=snap.window_seconds or 0) else None)
        found = next((s for s in snaps if s.period_start <= now < s.period_end), None)
        return (found.spend_usd, found) if found is not None else (ZERO, None)

    def by_budget(self) -> dict[str, list[BudgetStateSnapshot]]:
        """Snapshots grouped by budget id (budgets the definitions no longer describe left out)."""
        return {bid: list(snaps.values()) for bid, snaps in self._index.items() if self._rule(bid, snaps) is not None}

    def exhausted(self, request: RequestScope, now: datetime) -> list[EnforcementDecision]:
        """Every block budget exhausted for this request now (sorted by budget id)."""
        now = to_utc(now)
        if self._block is None:
            self._block = [(bid, rule, per) for bid, per in self._index.items()
                           if (rule := self._rule(bid, per)) is not None and rule.action == "block"]
        out = []
        for budget_id, rule, per in self._block:
            if not rule.applies(request):
                continue
            spend, snap = self.spend_now(list(per.values()), now)
            if snap is None or spend < rule.limit:
                continue
            period = ("the last " + str((snap.window_seconds or 0) // 3600) + " hours"
                      if snap.period_kind == "rolling" else f"this {snap.period_kind}")
            out.append(EnforcementDecision(
                blocked=True, budget_id=budget_id, budget_name=rule.name, spend_usd=spend,
                limit_usd=rule.limit, period_key=snap.period_key, period_end=snap.period_end,
                reason=(f"budget {rule.name!r} exhausted: ${canonical(spend)} spent of "
                        f"${canonical(rule.limit)} in {period}"),
            ))
        out.sort(key=lambda d: d.budget_id or "")
        return out

    def applicable_block_budgets(self, request: RequestScope) -> list[str]:
        """Ids of the block budgets whose scope covers the request (from the definitions when known)."""
        rules = self._defs if self._defs is not None else self._from_snaps
        return sorted(bid for bid, r in rules.items() if r.action == "block" and r.applies(request))

    def check(self, request: RequestScope, now: datetime) -> EnforcementDecision:
        """Block when any applicable block budget is exhausted (the first by budget id names the reason)."""
        found = self.exhausted(request, now)
        return found[0] if found else ALLOW
