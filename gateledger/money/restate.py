"""Restatement: new versions of cost rows after a catalog change, and the budget periods they move.

Pure part of ``gateledger costs restate --from DATE [--to DATE]`` (``restate_run``: the command
reads the latest version of each cost row in the range from ClickHouse, calls ``restate`` and
publishes the new rows to the ``cost.ledger`` topic). Restated rows keep their id, carry the next
version (``version + 1``: the restatement round lives in the low 16 bits), ``restated=True`` and the
new ``price_version``. Because they travel through Kafka like any cost row, the budget accountant
applies them with the same code: a higher version *replaces* the row's previous amount in its
period, so the affected budget periods are recomputed without a separate path, and thresholds the
corrected spend crosses fire (late); thresholds already fired stay fired.

Rows unpriced for lack of usage (``no_usage``, ``zero_usage``) cannot change with prices and are
left alone. Tool calls that had no price have no cost row; pricing them after the fact needs the
``mcp_calls`` table (not done: a tool priced after the fact is priced from then on).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime

from gateledger.clock import to_utc
from gateledger.contracts.events import CostEntry, CostKind
from gateledger.money.amounts import ZERO
from gateledger.money.budgets import BudgetSet
from gateledger.money.catalog import PriceCatalog
from gateledger.money.cost import MAX_RESTATEMENTS, USAGE_REASONS, llm_pricing, restatement_round
from gateledger.money.usage import TokenUsage

_COMPARED = ("input_cost_usd", "output_cost_usd", "cache_read_cost_usd", "cache_write_cost_usd", "tool_cost_usd",
             "total_cost_usd", "unpriced", "unpriced_reason", "price_entry", "priced_model")


class RestatementError(ValueError):
    """A row that cannot be restated (e.g. restated too many times)."""


@dataclass
class RestatementResult:
    """New row versions, and what they touch."""

    rows: list[CostEntry] = field(default_factory=list)
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (cost id, why)
    affected_periods: set[tuple[str, str]] = field(default_factory=set)  # (budget id, period key)


def latest_versions(rows: Iterable[CostEntry]) -> list[CostEntry]:
    """The latest version of each cost row (what ClickHouse's FINAL would show)."""
    best: dict[str, CostEntry] = {}
    for r in rows:
        if r.id not in best or r.version > best[r.id].version:
            best[r.id] = r
    return sorted(best.values(), key=lambda r: (r.time, r.id))


def reprice(row: CostEntry, catalog: PriceCatalog, computed_at: datetime) -> CostEntry | None:
    """The next version of ``row`` under ``catalog``, or None when nothing about its price changes."""
    if row.kind == CostKind.LLM:
        if row.unpriced_reason in USAGE_REASONS:
            return None
        if row.input_tokens + row.output_tokens == 0 and not row.unpriced:
            return None  # a failed call without usage: no charge under any catalog
        usage = TokenUsage(row.input_tokens, row.output_tokens, row.cache_read_tokens, row.cache_write_tokens)
        fields, _ = llm_pricing(catalog, row.provider, [row.model or ""], row.time, usage)
        fields["tool_cost_usd"] = ZERO
    else:
        match = catalog.tool_price([row.mcp_server_id or "", row.mcp_server_name or ""], row.tool_name, row.time)
        amount = ZERO if match is None else match.point.per_call
        billed_before = row.pricing_note is None or "not billed" not in row.pricing_note
        if match is not None and not billed_before and not match.point.bill_failed:
            amount = ZERO
        fields = {"tool_cost_usd": amount, "total_cost_usd": amount, "unpriced": False, "unpriced_reason": None,
                  "price_entry": match.entry_key if match else None, "priced_model": None,
                  "pricing_note": row.pricing_note if match else "tool no longer priced in the catalog"}
    if all(getattr(row, k) == fields.get(k, getattr(row, k)) for k in _COMPARED):
        return None
    if restatement_round(row.version) >= MAX_RESTATEMENTS:
        raise RestatementError(f"cost row {row.id} has been restated {MAX_RESTATEMENTS} times")
    return row.model_copy(update={**fields, "version": row.version + 1, "restated": True,
                                  "price_version": catalog.version, "computed_at": to_utc(computed_at)})


def restate(rows: Iterable[CostEntry], catalog: PriceCatalog, budgets: BudgetSet,
            computed_at: datetime) -> RestatementResult:
    """Reprice the latest version of every row; list the new versions and the budget periods they change."""
    out = RestatementResult()
    for row in latest_versions(rows):
        if row.kind == CostKind.LLM and row.unpriced_reason in USAGE_REASONS:
            out.skipped.append((row.id, f"unpriced for {row.unpriced_reason}: no price can change it"))
            continue
        new = reprice(row, catalog, computed_at)
        if new is None:
            out.unchanged += 1
            continue
        out.rows.append(new)
        for budget in budgets.matching(new):
            if new.total_cost_usd != row.total_cost_usd or new.unpriced != row.unpriced:
                out.affected_periods |= {(budget.id, p.key) for p in budget.spec.periods_touched(new.time)}
    return out
