"""`gateledger budgets status`: each budget's current period and its spend, read from ClickHouse.

Spend is summed over the latest version of each cost row (restatements replace, duplicates
collapse) with event time in the period, filtered by the budget's scope on the stored columns, so
it agrees with the accountant without reading any stream state.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from gateledger.clock import to_utc
from gateledger.money.amounts import ratio
from gateledger.money.budgets import Budget, _is_glob
from gateledger.money.names import loose
from gateledger.tables import Table, newest
from gateledger.money.periods import PeriodKind

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")

# Scope dimension -> columns of the deduplicated cost rows it is matched against.
_COLUMNS = {
    "tenant": ["tenant"],
    "team": ["team"],
    "user": ["user_id"],
    "client": ["client_id"],
    "mcp_server": ["mcp_server_id", "mcp_server_name"],
    "model": ["model", "priced_model"],
}


def glob_to_re2(pattern: str) -> str:
    """A glob as an anchored RE2 regular expression (ClickHouse ``match``)."""
    out = []
    i = 0
    while i < len(pattern):
        c = pattern[i]
        if c == "*":
            out.append(".*")
        elif c == "?":
            out.append(".")
        elif c == "[":
            j = pattern.find("]", i + 1)
            if j == -1:
                out.append(re.escape(c))
            else:
                body = pattern[i + 1:j]
                if body.startswith("!"):
                    body = "^" + body[1:]
                out.append("[" + body.replace("\\", "\\\\") + "]")
                i = j
        else:
            out.append(re.escape(c))
        i += 1
    return "^" + "".join(out) + "$"


def window(budget: Budget, now: datetime) -> tuple[datetime, datetime, str]:
    """The interval ``budgets status`` reports on: the current period, or the trailing window."""
    now = to_utc(now)
    if budget.period is PeriodKind.ROLLING:
        # The trailing window (now - N hours, now], as a half-open [start, end) in microseconds.
        tick = timedelta(microseconds=1)
        return now - timedelta(hours=budget.hours or 0) + tick, now + tick, f"last {budget.hours}h"
    p = budget.spec.period_at(now)
    return p.start, p.end, p.key


def spend_query(budget: Budget, database: str, start: datetime, end: datetime) -> tuple[str, dict[str, Any]]:
    """SQL (with bound parameters) for a budget's spend and unpriced count in ``[start, end)``."""
    if not _IDENT.match(database):
        raise ValueError(f"bad database name {database!r}")
    # Times as ClickHouse text (UTC): the same through a direct client and through the stack's endpoint.
    params: dict[str, Any] = {"start": to_utc(start).strftime("%Y-%m-%d %H:%M:%S.%f"),
                              "end": to_utc(end).strftime("%Y-%m-%d %H:%M:%S.%f")}
    conds: list[str] = []
    for dim, allowed in budget.scope.constrained().items():
        alternatives = []
        for i, value in enumerate(allowed):
            for col in _COLUMNS[dim]:
                name = f"{dim}_{i}_{col}"
                subject = f"replaceAll(lower({col}), '.', '-')" if dim == "model" else col
                text = loose(value) if dim == "model" else value
                if _is_glob(value):
                    params[name] = glob_to_re2(text)
                    alternatives.append(f"match({subject}, {{{name}:String}})")
                else:
                    params[name] = text
                    alternatives.append(f"{subject} = {{{name}:String}}")
        conds.append("(" + " OR ".join(alternatives) + ")")
    where = " AND ".join(conds) if conds else "1"
    latest = newest(
        f"`{database}`.{Table.COST_LEDGER}",
        "total_cost_usd AS total, unpriced, tenant, team, user_id, client_id, mcp_server_id, mcp_server_name, model,"
        " priced_model",
        "time >= {start:DateTime64(6, 'UTC')} AND time < {end:DateTime64(6, 'UTC')}",
    )
    sql = f"""
SELECT count() AS cost_rows, sum(total) AS spend, countIf(unpriced) AS unpriced_rows
FROM {latest}
WHERE {where}"""
    return sql, params


@dataclass(frozen=True)
class BudgetStatus:
    budget: Budget
    period: str
    start: datetime
    end: datetime
    spend: Decimal
    cost_rows: int
    unpriced_rows: int

    @property
    def utilization(self) -> Decimal:
        return ratio(self.spend, self.budget.limit_usd, 6)

    @property
    def crossed(self) -> list[int]:
        return [t for t in self.budget.thresholds if self.spend * 100 >= self.budget.limit_usd * t]

    def to_json(self) -> dict[str, Any]:
        return {
            "budget_id": self.budget.id, "budget_name": self.budget.name, "period": self.period,
            "start": self.start.isoformat(), "end": self.end.isoformat(), "spend_usd": format(self.spend, "f"),
            "limit_usd": format(self.budget.limit_usd, "f"), "utilization": format(self.utilization, "f"),
            "thresholds_crossed": self.crossed, "action": self.budget.action, "cost_rows": self.cost_rows,
            "unpriced_rows": self.unpriced_rows,
            "exhausted": self.spend >= self.budget.limit_usd,
        }


def budget_status(querier: Any, budget: Budget, database: str, now: datetime) -> BudgetStatus:
    """Query one budget's status through a querier (``gateledger.clickhouse.access``)."""
    start, end, label = window(budget, now)
    sql, params = spend_query(budget, database, start, end)
    result = querier.run(sql, params)
    rows, spend, unpriced = result.rows[0] if result.rows else (0, 0, 0)
    return BudgetStatus(budget, label, start, end, Decimal(str(spend or 0)), int(rows or 0), int(unpriced or 0))
