"""Benchmarks of the money core (run: python -m tests.gateledger.money.bench_money). Medians of 5 runs; numbers go
to docs/money.md. Not a test: speed is never asserted."""

from __future__ import annotations

import statistics
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateledger.contracts.events import CostEntry, CostKind, LlmCall
from gateledger.money.accounting import BudgetBook, snapshot
from gateledger.money.budgets import parse_budgets
from gateledger.money.catalog import load_catalog
from gateledger.money.cost import llm_cost
from gateledger.money.enforcement import EnforcementView, RequestScope

T = datetime(2026, 3, 1, tzinfo=UTC)
MODELS = [("openai", "gpt-4o-2024-08-06"), ("anthropic", "claude-sonnet-4-5-20250929"),
          ("aws.bedrock", "us.anthropic.claude-haiku-4-5-20251001-v1:0"), ("vertex_ai", "models/gemini-2.5-pro"),
          ("mistral", "mistral-medium-2508")]


def median_rate(fn, n: int, runs: int = 5) -> float:  # noqa: ANN001
    rates = []
    for _ in range(runs):
        start = time.perf_counter()
        fn()
        rates.append(n / (time.perf_counter() - start))
    return statistics.median(rates)


def main() -> None:
    catalog = load_catalog()
    calls = [LlmCall(id=f"l{i}", tenant=f"t{i % 3}", time=T + timedelta(seconds=i), source="b",
                     provider=MODELS[i % 5][0], model=MODELS[i % 5][1], input_tokens=5000 + i, output_tokens=300,
                     cache_read_tokens=2000, total_tokens=5300 + i, user_id=f"u{i % 50}") for i in range(5000)]
    rate = median_rate(lambda: [llm_cost(c, catalog, computed_at=T) for c in calls], len(calls))
    print(f"cost rows:            {rate:,.0f} LLM calls/s (5 providers, cache tokens, catalog lookups)")

    budgets = parse_budgets({"budgets": [
        {"name": f"b{i}", "scope": {"tenant": f"t{i % 3}"}, "period": ["day", "month", "week"][i % 3],
         "timezone": "Europe/Berlin", "limit_usd": "1000", "action": "block"} for i in range(9)]
        + [{"name": "roll", "period": "rolling", "hours": 6, "limit_usd": "50", "action": "block"}]})
    rows = [CostEntry(id=f"c{i}", version=1 << 16, tenant=f"t{i % 3}", time=T + timedelta(seconds=37 * i),
                      kind=CostKind.LLM, event_id=f"e{i}", total_cost_usd=Decimal("0.0123456789"), price_version="v",
                      computed_at=T) for i in range(5000)]

    def account() -> None:
        book = BudgetBook(budgets)
        for r in rows:
            book.apply_cost(r, now=r.time)

    applied = sum(1 for r in rows for b in budgets.budgets if b.scope.matches_cost(r))
    rate = median_rate(account, applied)
    print(f"budget accounting:    {rate:,.0f} contributions/s ({applied / len(rows):.1f} budgets per cost row)")

    book = BudgetBook(budgets)
    for r in rows:
        book.apply_cost(r, now=r.time)
    view = EnforcementView()
    for (bid, _), s in book.states.items():
        view.update(snapshot(book.budgets[bid], s, T))
    reqs = [RequestScope(tenant=f"t{i % 3}", user=f"u{i}", model="gpt-4o") for i in range(20000)]
    now = T + timedelta(days=1)
    rate = median_rate(lambda: [view.check(q, now) for q in reqs], len(reqs))
    print(f"enforcement check:    {1e6 / rate:,.1f} us per decision ({len(view.snapshots)} snapshots in view)")


if __name__ == "__main__":
    main()
