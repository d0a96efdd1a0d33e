"""Budget accounting as a pure, serializable state machine.

State lives in two small JSON-able values (the budget stage, ``stream_processors/budgets/``, keeps
them in its faust table, in the partition that owns the budget):

* ``LedgerEntry`` per (budget, cost row id): the version of the row last applied and its amount.
  It is what makes duplicates free and restatements *replace* rather than add. It keeps the last
  few winning versions with the message position that applied each, for crash recovery.
* ``PeriodState`` per (budget, period): spend, a sparse bucket histogram (projection, rolling
  windows), the thresholds already fired, whether the projection fired, and the source position
  watermark.

``apply_contribution`` is the only transition. For a contribution of cost row ``c`` (id, version,
amount):

1. It wins over the ledger entry when ``(version, digest)`` is larger; the period delta is
   ``amount - previous amount`` (a restatement replaces; a duplicate or an older version gives 0).
2. The delta lands in the period(s) of the row's **event time** (a late row updates its old period).
3. Thresholds: each threshold ``t`` fires when ``value * 100 >= limit * t`` and ``t`` is not yet in
   ``fired``; it is then recorded, so it fires once per budget per period whatever comes after —
   duplicates, replays, spend dipping below and rising again (no flapping). ``value`` is the
   period's spend (calendar) or the largest trailing-window spend ending inside the block (rolling).
   Alerts already fired are facts: a restatement that lowers spend does not retract them.
4. Projection (calendar periods): see ``_projection``.

Crash safety: the two tables are written separately and a worker can die between the writes and
before its offset commit. With ``source`` (partition, offset of the contribution message) given,
each period state records the highest offset it has absorbed and the ledger entry records which
message applied each winning version, so replaying the partition from the committed offset after
each table lost any suffix of its writes reproduces exactly the same spend (an alert whose state write was lost re-fires with the
same id; consumers deduplicate by id).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from datetime import datetime
from decimal import Decimal, localcontext
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from gateledger.clock import to_utc
from gateledger.contracts.budget_state import BudgetContribution, BudgetStateSnapshot
from gateledger.contracts.events import BudgetAlert, BudgetAlertKind, CostEntry
from gateledger.ids import stable_id
from gateledger.money.alerts import make_alert
from gateledger.money.amounts import MONEY_CONTEXT, STORED_DECIMALS, ZERO, add, canonical, mul
from gateledger.money.budgets import Budget, BudgetSet
from gateledger.money.periods import ROLLING_BUCKETS, Period, PeriodKind

_STATE_CONFIG = ConfigDict(extra="forbid")


@dataclass(frozen=True, order=True)
class SourcePos:
    """Where a contribution message sits in its Kafka partition."""

    partition: int
    offset: int


class LedgerWrite(BaseModel):
    """One winning version of a cost row, and the message that applied it."""

    model_config = _STATE_CONFIG

    v: int
    d: str
    amt: Decimal
    unp: bool = False
    src: tuple[int, int] | None = None


# Winning writes kept per (budget, cost row): enough to redo any message of a replay after a crash
# (a row restated this many times within one uncommitted window is not a real case).
LEDGER_HISTORY = 8


class LedgerEntry(BaseModel):
    """The versions of one cost row that won, for one budget; the last one is the row's current amount."""

    model_config = _STATE_CONFIG

    h: list[LedgerWrite] = Field(min_length=1)

    @property
    def current(self) -> LedgerWrite:
        return self.h[-1]

    def base_for(self, src: tuple[int, int] | None) -> LedgerWrite | None:
        """What the period states held for this row just before the message at ``src``.

        Replays run in partition order, so every winning write of an earlier message is already in
        the period states when this message is (re)applied; writes of this or later messages that
        a crash left in the ledger are not.
        """
        if src is None:
            return self.current
        earlier = [w for w in self.h if w.src is None or w.src < src]
        return earlier[-1] if earlier else None

    def with_write(self, w: LedgerWrite) -> LedgerEntry:
        kept = [x for x in self.h if w.src is None or x.src is None or x.src < w.src]
        return LedgerEntry(h=[*kept, w][-LEDGER_HISTORY:])


class PeriodState(BaseModel):
    """Everything the accountant knows about one budget period."""

    model_config = _STATE_CONFIG

    budget_id: str
    key: str
    start: datetime
    end: datetime
    bucket_seconds: int
    spend: Decimal = ZERO  # costs with event time inside [start, end)
    buckets: dict[int, Decimal] = Field(default_factory=dict)  # bucket index -> spend; negative: previous block
    unpriced: int = 0  # unpriced cost rows counted here (their cost is unknown: spend is a lower bound)
    fired: list[int] = Field(default_factory=list)
    projected: bool = False
    last_event_time: datetime | None = None
    src: dict[int, int] = Field(default_factory=dict)  # partition -> highest offset absorbed
    seq: int = 0

    def period(self) -> Period:
        return Period(self.key, self.start, self.end, self.bucket_seconds)

    def absorbed(self, source: SourcePos | None) -> bool:
        """True when this state already includes the message at ``source``."""
        return source is not None and self.src.get(source.partition, -1) >= source.offset


def fresh_state(budget: Budget, period: Period) -> PeriodState:
    """The state of a period nothing has touched yet."""
    return PeriodState(budget_id=budget.id, key=period.key, start=period.start, end=period.end,
                       bucket_seconds=period.bucket_seconds)


def contribution_digest(cost: CostEntry) -> str:
    """Tie-break digest of a cost row's content."""
    return stable_id("cost-content", canonical(cost.total_cost_usd), cost.price_version, cost.unpriced)[:16]


def contribution(budget: Budget, cost: CostEntry) -> BudgetContribution:
    """What one cost row contributes to one budget (the caller checked the scope)."""
    return BudgetContribution(budget_id=budget.id, cost_id=cost.id, version=cost.version,
                              digest=contribution_digest(cost), amount=cost.total_cost_usd, unpriced=cost.unpriced,
                              time=cost.time, event_id=cost.event_id, tenant=cost.tenant)


def contributions_for(budgets: BudgetSet | Iterable[Budget], cost: CostEntry) -> list[BudgetContribution]:
    """The contributions of one cost row: one per budget whose scope it matches (key them by budget_id)."""
    items = budgets.budgets if isinstance(budgets, BudgetSet) else budgets
    return [contribution(b, cost) for b in items if b.scope.matches_cost(cost)]


@dataclass
class Transition:
    """What one contribution changes: the ledger entry and period states to write, the alerts to emit."""

    ledger: LedgerEntry | None
    states: dict[str, PeriodState] = field(default_factory=dict)
    alerts: list[BudgetAlert] = field(default_factory=list)


def window_values(state: PeriodState, window_buckets: int) -> list[Decimal]:
    """Rolling: trailing-window spend for each window ending at a bucket of this block (0..K-1)."""
    out = []
    with localcontext(MONEY_CONTEXT):
        for e in range(window_buckets):
            out.append(sum((v for i, v in state.buckets.items() if e - window_buckets < i <= e), ZERO))
    return out


def threshold_value(budget: Budget, state: PeriodState) -> Decimal:
    """The spend thresholds are compared with: period spend, or the worst trailing window (rolling)."""
    if budget.period is PeriodKind.ROLLING:
        return max(window_values(state, ROLLING_BUCKETS), default=ZERO)
    return state.spend


def _add_to_state(state: PeriodState, period: Period, delta: Decimal, d_unpriced: int, t: datetime,
                  source: SourcePos | None, rolling: bool) -> PeriodState:
    # Values inside are immutable (Decimal, datetime, int): copying the containers is a full copy.
    new = state.model_copy(update={"buckets": dict(state.buckets), "src": dict(state.src), "fired": list(state.fired)})
    idx = period.bucket_of(t)
    own = period.contains(t)
    if delta != 0 and (own or (rolling and idx > -ROLLING_BUCKETS)):
        value = add(new.buckets.get(idx, ZERO), delta)
        if value == 0:
            new.buckets.pop(idx, None)
        else:
            new.buckets[idx] = value
        if own:
            new.spend = add(new.spend, delta)
    if own:
        new.unpriced += d_unpriced
        if new.last_event_time is None or t > new.last_event_time:
            new.last_event_time = t
    if source is not None:
        new.src[source.partition] = max(new.src.get(source.partition, -1), source.offset)
    new.seq += 1
    return new


def _projection(budget: Budget, state: PeriodState, period: Period) -> tuple[Decimal, int] | None:
    """The projected spend if the burn rate says the limit will be crossed before the period ends.

    Definition (exact and deterministic): let D be the period length and, for a bucket i, ``C_i``
    the spend with event time before the bucket's end ``e_i`` and ``el_i = e_i - start``. The
    projection holds at i when bucket i has been reached by the data (``i <=`` the bucket of the
    latest event time seen in the period), ``el_i >= min_elapsed * D`` (no extrapolation from too
    little time), ``e_i < end`` (the last bucket is no forecast), ``C_i < limit`` and
    ``C_i * D >= limit * el_i`` — the average burn rate up to ``e_i``, continued to the end of the
    period, reaches the limit. Only the ends of non-empty buckets and the first bucket end past
    ``min_elapsed`` can be the first such i (elsewhere C is flat and el larger). It is evaluated
    after every change and fires once per period; it is not fired once the limit itself is reached.
    """
    if state.last_event_time is None:
        return None
    reached = period.bucket_of(state.last_event_time)
    limit = budget.limit_usd
    total = period.seconds
    threshold_el = mul(budget.projection_min_elapsed, Decimal(total))
    own = sorted(i for i in state.buckets if i >= 0)
    first_due = None
    n_buckets = -(-total // period.bucket_seconds)
    for i in range(n_buckets):
        if Decimal(int((period.bucket_end(i) - period.start).total_seconds())) >= threshold_el:
            first_due = i
            break
    candidates = sorted(i for i in set(own) | ({first_due} if first_due is not None else set()) if i <= reached)
    cumulative = ZERO
    j = 0
    for i in candidates:
        while j < len(own) and own[j] <= i:
            cumulative = add(cumulative, state.buckets[own[j]])
            j += 1
        end_i = period.bucket_end(i)
        if end_i >= period.end:
            break
        elapsed = int((end_i - period.start).total_seconds())
        if Decimal(elapsed) < threshold_el or cumulative >= limit:
            continue
        if mul(cumulative, Decimal(total)) >= mul(limit, Decimal(elapsed)):
            with localcontext(MONEY_CONTEXT):
                projected = (cumulative * total / elapsed).quantize(Decimal(1).scaleb(-STORED_DECIMALS))
            return projected, i
    return None


def _evaluate(budget: Budget, state: PeriodState, period: Period, c: BudgetContribution,
              now: datetime, fired_at: datetime | None) -> tuple[PeriodState, list[BudgetAlert]]:
    alerts: list[BudgetAlert] = []
    value = threshold_value(budget, state)
    fired = set(state.fired)
    for pct in budget.thresholds:
        if pct in fired:
            continue
        if mul(value, Decimal(100)) >= mul(budget.limit_usd, Decimal(pct)):
            fired.add(pct)
            alerts.append(make_alert(budget, period, BudgetAlertKind.THRESHOLD, pct, value, contribution=c, now=now,
                                     fired_at=fired_at))
    projected = state.projected
    if (budget.projection and not projected and budget.period is not PeriodKind.ROLLING
            and value < budget.limit_usd):
        found = _projection(budget, state, period)
        if found is not None:
            projected = True
            alerts.append(make_alert(budget, period, BudgetAlertKind.PROJECTED, 100, value, contribution=c, now=now,
                                     projected_spend=found[0], fired_at=fired_at))
    if fired == set(state.fired) and projected == state.projected:
        return state, alerts
    new = state.model_copy(update={"fired": sorted(fired), "projected": projected})
    return new, alerts


def apply_contribution(
    budget: Budget,
    ledger: LedgerEntry | None,
    states: Mapping[str, PeriodState],
    c: BudgetContribution,
    *,
    now: datetime,
    source: SourcePos | None = None,
    fired_at: datetime | None = None,
) -> Transition:
    """Apply one contribution; ``states`` must hold the current state of every period it touches (missing = fresh).

    ``now`` is how far the stream has got (the budget stage passes the largest event time seen on the partition, so
    lateness is the same on every replay); an alert is ``late`` when its period ended before ``now``.
    ``fired_at`` stamps alerts with the wall clock (default ``now``).
    """
    if c.budget_id != budget.id:
        raise ValueError(f"contribution for {c.budget_id} applied to budget {budget.id}")
    now = to_utc(now)
    src = (source.partition, source.offset) if source is not None else None
    base = ledger.base_for(src) if ledger is not None else None
    wins = base is None or (c.version, c.digest) > (base.v, base.d)
    if wins:
        delta = add(c.amount, -(base.amt if base is not None else ZERO))
        d_unpriced = int(c.unpriced) - int(base.unp if base is not None else False)
        write = LedgerWrite(v=c.version, d=c.digest, amt=c.amount, unp=c.unpriced, src=src)
        new_ledger: LedgerEntry | None = ledger.with_write(write) if ledger is not None else LedgerEntry(h=[write])
    else:
        delta, d_unpriced, new_ledger = ZERO, 0, ledger
    rolling = budget.period is PeriodKind.ROLLING
    out = Transition(new_ledger)
    for period in budget.spec.periods_touched(c.time):
        state = states.get(period.key) or fresh_state(budget, period)
        if state.absorbed(source):
            continue
        state = _add_to_state(state, period, delta, d_unpriced, c.time, source, rolling)
        state, alerts = _evaluate(budget, state, period, c, now, fired_at)
        out.states[period.key] = state
        out.alerts.extend(alerts)
    return out


def snapshot(budget: Budget, state: PeriodState, updated_at: datetime) -> BudgetStateSnapshot:
    """The enforcement / gauge view of a period state."""
    rolling = budget.period is PeriodKind.ROLLING
    return BudgetStateSnapshot(
        budget_id=budget.id, budget_name=budget.name, tenant=budget.tenant_label,
        scope={d: list(v) for d, v in budget.scope.constrained().items()}, action=budget.action,
        period_kind=budget.period.value, period_key=state.key, period_start=state.start, period_end=state.end,
        limit_usd=budget.limit_usd, spend_usd=state.spend, window_seconds=budget.spec.window_seconds,
        bucket_seconds=state.bucket_seconds, buckets=dict(state.buckets) if rolling else {},
        thresholds=list(budget.thresholds), fired_thresholds=list(state.fired), projected_fired=state.projected,
        unpriced_count=state.unpriced, last_event_time=state.last_event_time, seq=state.seq,
        updated_at=to_utc(updated_at),
    )


class BudgetBook:
    """Both tables in memory, for tests, the CLI and as the reference the faust agents mirror."""

    def __init__(self, budgets: BudgetSet | Iterable[Budget]) -> None:
        items = budgets.budgets if isinstance(budgets, BudgetSet) else list(budgets)
        self.budgets: dict[str, Budget] = {b.id: b for b in items}
        self.ledger: dict[tuple[str, str], LedgerEntry] = {}
        self.states: dict[tuple[str, str], PeriodState] = {}

    def apply(self, c: BudgetContribution, *, now: datetime, source: SourcePos | None = None) -> list[BudgetAlert]:
        """Apply one contribution and keep the result."""
        budget = self.budgets[c.budget_id]
        keys = [p.key for p in budget.spec.periods_touched(c.time)]
        current = {k: s for k in keys if (s := self.states.get((budget.id, k))) is not None}
        t = apply_contribution(budget, self.ledger.get((budget.id, c.cost_id)), current, c, now=now, source=source)
        if t.ledger is not None:
            self.ledger[(budget.id, c.cost_id)] = t.ledger
        for k, s in t.states.items():
            self.states[(budget.id, k)] = s
        return t.alerts

    def apply_cost(self, cost: CostEntry, *, now: datetime, source: SourcePos | None = None) -> list[BudgetAlert]:
        """Fan a cost row out to every budget whose scope it matches, and apply it."""
        alerts: list[BudgetAlert] = []
        for c in contributions_for(self.budgets.values(), cost):
            alerts.extend(self.apply(c, now=now, source=source))
        return alerts

    def state(self, budget_id: str, period_key: str) -> PeriodState | None:
        return self.states.get((budget_id, period_key))

    def to_json(self) -> dict[str, Any]:
        """Both tables as JSON-able data (what faust's changelogs would hold)."""
        return {
            "ledger": {f"{b}|{c}": e.model_dump(mode="json") for (b, c), e in sorted(self.ledger.items())},
            "states": {f"{b}|{k}": s.model_dump(mode="json") for (b, k), s in sorted(self.states.items())},
        }

    def load_json(self, data: Mapping[str, Any]) -> None:
        """Replace both tables with serialized ones."""
        self.ledger = {tuple(k.split("|", 1)): LedgerEntry.model_validate(v)  # type: ignore[misc]
                       for k, v in data["ledger"].items()}
        self.states = {tuple(k.split("|", 1)): PeriodState.model_validate(v)  # type: ignore[misc]
                       for k, v in data["states"].items()}
