"""`gateledger budgets add|list|status` and `gateledger costs price|catalog` against the real chDB engine:
status reads spend from ClickHouse and agrees with the accountant to the last decimal."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

from gateledger import jsonutil
from gateledger_cli.main import cli
from gateledger.contracts.events import CostEntry, CostKind
from gateledger.money.accounting import BudgetBook
from gateledger.money.budgets import load_budgets
from gateledger.settings import Settings
from sinks.clickhouse.rows import describe

AT = datetime(2026, 3, 29, 21, 30, tzinfo=UTC)  # 23:30 in Berlin on the DST day


def land(client, db: str, rows: list[CostEntry]) -> None:  # noqa: ANN001
    """Insert rows the way the sink does (schema-driven mapping of the JSON contract)."""
    mapping = describe(client, db, "cost_ledger")
    data = [mapping.to_row(jsonutil.loads(jsonutil.dumps(r.model_dump(mode="json"))), "t", 0, i)
            for i, r in enumerate(rows)]
    client.insert(f"{db}.cost_ledger", data, column_names=mapping.column_names)


def cost(cid: str, amount: str, t: datetime, version: int = 1 << 16, **kw) -> CostEntry:
    base = dict(id=cid, version=version, tenant="acme", time=t, kind=CostKind.LLM, event_id=f"e{cid}",
                model="claude-sonnet-4-5-20250929", priced_model="claude-sonnet-4-5", user_id="alice",
                total_cost_usd=Decimal(amount), price_version="v", computed_at=t)
    base.update(kw)
    return CostEntry(**base)


@pytest.fixture
def runner(gl_env, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.setenv("GATELEDGER_BUDGETS_FILE", str(tmp_path / "budgets.yaml"))
    return CliRunner()


def invoke(runner: CliRunner, *args: str) -> str:
    result = runner.invoke(cli, list(args), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return result.output


def test_budget_status_reads_clickhouse_and_matches_the_accountant(runner: CliRunner, settings: Settings,
                                                                   ch_client, tmp_path: Path) -> None:
    invoke(runner, "budgets", "add", "acme-day", "--limit", "0.5", "--period", "day", "--timezone", "Europe/Berlin",
           "--scope", "tenant=acme", "--scope", "model=claude-*", "--action", "block")
    invoke(runner, "budgets", "add", "alice-6h", "--limit", "1", "--period", "rolling", "--hours", "6",
           "--scope", "user=alice", "--threshold", "25", "--threshold", "100")
    out = runner.invoke(cli, ["budgets", "add", "acme-day", "--limit", "1", "--period", "day"])
    assert out.exit_code != 0 and "already exists" in out.output
    listing = invoke(runner, "budgets", "list")
    assert "acme-day" in listing and "calendar day (Europe/Berlin)" in listing and "rolling 6h" in listing

    day_start = datetime(2026, 3, 28, 23, tzinfo=UTC)  # Berlin midnight; the day has 23 hours
    rows = [
        cost("a", "0.100000000001", day_start),  # first instant of the day
        cost("b", "0.2", AT - timedelta(hours=2)),
        cost("b", "0.25", AT - timedelta(hours=2), version=(1 << 16) + 1, restated=True),  # replaces 0.2
        cost("c", "0.125", AT - timedelta(minutes=5), model="claude-haiku-4-5-20251001", priced_model="claude-haiku-4-5"),
        cost("d", "0", AT - timedelta(minutes=1), unpriced=True, unpriced_reason="unknown_model"),
        cost("e", "9", day_start - timedelta(microseconds=1)),  # previous Berlin day
        cost("f", "9", AT, tenant="beta"),  # other tenant
        cost("g", "9", AT, model="gpt-4o", priced_model="gpt-4o"),  # other model
    ]
    land(ch_client, settings.clickhouse.database, rows)
    land(ch_client, settings.clickhouse.database, rows[:3])  # a re-delivered batch
    status = {s["budget_name"]: s for s in jsonutil.loads(invoke(runner, "budgets", "status", "--at", AT.isoformat(),
                                                                 "--json"))}
    day = status["acme-day"]
    assert day["period"] == "day:2026-03-29" and day["start"] == day_start.isoformat()
    assert Decimal(day["spend_usd"]) == Decimal("0.475000000001")
    assert day["unpriced_rows"] == 1 and day["thresholds_crossed"] == [50, 80] and not day["exhausted"]

    # The accountant, fed the same rows in any order, holds the same spend.
    budgets = load_budgets(tmp_path / "budgets.yaml")
    book = BudgetBook(budgets)
    for r in reversed(rows + rows[:3]):
        book.apply_cost(r, now=AT)
    assert book.state("acme-day", "day:2026-03-29").spend == Decimal(day["spend_usd"])

    roll = status["alice-6h"]
    assert roll["period"] == "last 6h" and Decimal(roll["spend_usd"]) == Decimal("0.25") + Decimal("0.125") + 9 + 9
    table = invoke(runner, "budgets", "status", "--at", AT.isoformat())
    assert "acme-day" in table and "95.00%" in table and "unpriced" in table


def test_costs_price_and_catalog(runner: CliRunner) -> None:
    out = invoke(runner, "costs", "price", "claude-sonnet-4-5-20250929", "--provider", "anthropic",
                 "--input-tokens", "53000", "--output-tokens", "800", "--cache-read", "50000", "--cache-write", "2000",
                 "--at", "2026-11-20T12:00:00+00:00")
    assert "anthropic/claude-sonnet-4-5@2025-09-29" in out and "= 0.0375 USD" in out
    missing = runner.invoke(cli, ["costs", "price", "gpt-9-ultra", "--provider", "openai"])
    assert missing.exit_code == 1 and "unpriced (unknown_model)" in missing.output
    catalog = jsonutil.loads(invoke(runner, "costs", "catalog", "--json"))
    assert catalog["version"].startswith("2026-11-21.") and len(catalog["models"]) > 50
