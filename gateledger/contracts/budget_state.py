"""Budget accounting records that travel on Kafka: what a cost row contributes to a budget, and the
state snapshot the enforcement read model consumes.

``BudgetContribution``: one cost row's amount for one budget. The processors fan each cost row out
to the budgets whose scope it matches and key the contribution by ``budget_id``, so one partition
owns each budget's state.

``BudgetStateSnapshot``: the state of one budget period after a change, published on the
compacted ``budget.state`` topic keyed ``<budget_id>|<period_key>``; the ingest service keeps the
latest per key in memory and answers "is a block budget exhausted for this scope now?" from it.
"""

from __future__ import annotations

from decimal import Decimal
from typing import ClassVar, Literal

from pydantic import BaseModel, ConfigDict, Field

from gateledger.contracts.wire.base import UtcTime
from gateledger.topics import Topic


class BudgetContribution(BaseModel):
    """One cost row's contribution to one budget (the unit the budget accountant applies)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    budget_id: str = Field(min_length=1)
    cost_id: str = Field(min_length=1)
    version: int = Field(ge=1)
    # Tie-break between two rows with the same id and version (should not happen; if it does, the
    # larger digest wins everywhere, whatever the arrival order).
    digest: str
    amount: Decimal
    unpriced: bool = False
    time: UtcTime  # event time of the cost row: it decides the period
    event_id: str | None = None
    tenant: str = "*"


class BudgetStateSnapshot(BaseModel):
    """The state of one budget period, for enforcement, gauges and `budgets status`."""

    model_config = ConfigDict(extra="forbid")

    topic: ClassVar[Topic] = Topic.BUDGET_STATE

    budget_id: str
    budget_name: str
    tenant: str
    scope: dict[str, list[str]] = Field(default_factory=dict)
    action: Literal["alert", "block"]
    period_kind: Literal["day", "week", "month", "rolling"]
    period_key: str
    period_start: UtcTime
    period_end: UtcTime
    limit_usd: Decimal
    # Calendar: spend in the period. Rolling: spend in the period's own block (the trailing window
    # is evaluated from `buckets`).
    spend_usd: Decimal
    # Rolling only: the trailing window length and the bucket grid (index relative to period_start;
    # negative indices are the previous block's tail), so any instant's window can be summed.
    window_seconds: int | None = None
    bucket_seconds: int
    buckets: dict[int, Decimal] = Field(default_factory=dict)
    thresholds: list[int]
    fired_thresholds: list[int] = Field(default_factory=list)
    projected_fired: bool = False
    unpriced_count: int = 0
    last_event_time: UtcTime | None = None
    seq: int = 0  # increases with every change of this period's state
    updated_at: UtcTime

    @property
    def key(self) -> str:
        return f"{self.budget_id}|{self.period_key}"
