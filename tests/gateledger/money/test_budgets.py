"""Budget definitions: the file format, validation, scope matching."""

from __future__ import annotations

from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path

import pytest

from gateledger.contracts.events import CostEntry, CostKind
from gateledger.money.accounting import contributions_for
from gateledger.money.budgets import (
    Budget,
    BudgetFileError,
    BudgetSet,
    BudgetsLoader,
    load_budgets,
    parse_budgets,
    save_budgets,
)
from gateledger.money.teams import TeamDirectory, TeamsFileError

T = datetime(2026, 3, 1, tzinfo=UTC)


def row(**kw) -> CostEntry:
    base = dict(id="c", tenant="acme", time=T, kind=CostKind.LLM, event_id="e", user_id="alice", team="ml",
                client_id="bot", model="claude-sonnet-4-5-20250929", priced_model="claude-sonnet-4-5",
                total_cost_usd=Decimal(1), price_version="v", computed_at=T)
    base.update(kw)
    return CostEntry(**base)


def test_file_round_trip(tmp_path: Path) -> None:
    text = """
budgets:
  - name: acme-monthly
    scope: {tenant: acme, model: ["claude-*", gpt-4o]}
    period: month
    timezone: Europe/Berlin
    limit_usd: 1000.50
    action: block
  - name: r
    period: rolling
    hours: 6
    limit_usd: "5"
    thresholds: [100, 50, 50]
    projection: false
"""
    (tmp_path / "b.yaml").write_text(text)
    bs = load_budgets(tmp_path / "b.yaml")
    a, r = bs.budgets
    assert a.id == "acme-monthly" and a.limit_usd == Decimal("1000.50") and a.thresholds == (50, 80, 100)
    assert a.scope.model == ("claude-*", "gpt-4o") and a.tenant_label == "acme"
    assert r.thresholds == (50, 100) and not r.projection and r.tenant_label == "*"
    save_budgets(tmp_path / "out.yaml", bs)
    assert load_budgets(tmp_path / "out.yaml") == bs
    assert "1000.50" in (tmp_path / "out.yaml").read_text()
    assert load_budgets(tmp_path / "missing.yaml") == BudgetSet()


@pytest.mark.parametrize(("spec", "message"), [
    ({"name": "x", "period": "month", "limit_usd": "0"}, "> 0"),
    ({"name": "x", "period": "month", "limit_usd": 1.5}, "quoted decimal"),
    ({"name": "x", "period": "rolling", "limit_usd": "1"}, "hours"),
    ({"name": "x", "period": "day", "timezone": "Nowhere/City", "limit_usd": "1"}, "timezone"),
    ({"name": "x", "period": "day", "limit_usd": "1", "thresholds": [0]}, "between 1 and 1000"),
    ({"name": "x y", "period": "day", "limit_usd": "1"}, "name"),
    ({"name": "x", "period": "day", "limit_usd": "1", "scope": {"region": "eu"}}, "region"),
    ({"name": "x", "period": "fortnight", "limit_usd": "1"}, "period"),
])
def test_invalid_budgets(spec: dict, message: str) -> None:
    with pytest.raises(BudgetFileError, match=message):
        parse_budgets({"budgets": [spec]})


def test_names_and_ids_are_unique() -> None:
    b = {"name": "x", "period": "day", "limit_usd": "1"}
    with pytest.raises(BudgetFileError, match="two budgets"):
        parse_budgets({"budgets": [b, b]})
    bs = parse_budgets({"budgets": [b]})
    with pytest.raises(BudgetFileError, match="already exists"):
        bs.with_budget(Budget.model_validate(b))
    replaced = bs.with_budget(Budget.model_validate({**b, "limit_usd": "2"}), replace=True)
    assert [x.limit_usd for x in replaced.budgets] == [Decimal(2)]


def scope_of(**scope) -> Budget:
    return Budget(name="b", period="day", limit_usd="1", scope=scope)


@pytest.mark.parametrize(("scope", "cost", "matches"), [
    ({}, {}, True),
    ({"tenant": "acme"}, {}, True),
    ({"tenant": "beta"}, {}, False),
    ({"tenant": ["beta", "acme"], "user": "alice"}, {}, True),
    ({"team": "ml"}, {"team": None}, False),
    ({"model": "claude-*"}, {}, True),
    ({"model": "claude-sonnet-4.5"}, {}, True),  # canonical name, dots and dashes alike
    ({"model": "CLAUDE-SONNET-4-5-20250929"}, {}, True),
    ({"model": "gpt-*"}, {}, False),
    ({"client": "b?t"}, {}, True),
    ({"mcp_server": "github"}, {"kind": CostKind.TOOL, "mcp_server_id": "ms1", "mcp_server_name": "github"}, True),
    ({"mcp_server": "github"}, {}, False),
    ({"user": "alice", "tenant": "beta"}, {}, False),
])
def test_scope_matching(scope: dict, cost: dict, matches: bool) -> None:
    assert scope_of(**scope).scope.matches_cost(row(**cost)) is matches


def test_teams_file() -> None:
    d = TeamDirectory.from_data({"teams": {"ml": ["alice", 42], "ops": ["bob"]}})
    assert d.team_of("alice") == "ml" and d.team_of("42") == "ml" and d.team_of("carol") is None
    assert d.members("ml") == ["42", "alice"]
    with pytest.raises(TeamsFileError, match="both"):
        TeamDirectory.from_data({"teams": {"ml": ["alice"], "ops": ["alice"]}})
    with pytest.raises(TeamsFileError):
        TeamDirectory.from_data({"teams": ["alice"]})


def test_loader_follows_the_file_and_fan_out(tmp_path: Path) -> None:
    import os
    import time

    path = tmp_path / "b.yaml"
    loader = BudgetsLoader(path)
    assert loader.current().budgets == []
    save_budgets(path, parse_budgets({"budgets": [{"name": "a", "period": "day", "limit_usd": "1",
                                                   "scope": {"tenant": "acme"}},
                                                  {"name": "b", "period": "day", "limit_usd": "1",
                                                   "scope": {"tenant": "beta"}}]}))
    assert [b.id for b in loader.current().budgets] == ["a", "b"]
    assert [c.budget_id for c in contributions_for(loader.current(), row())] == ["a"]
    path.write_text("budgets: [oops")
    os.utime(path, ns=(time.time_ns(), time.time_ns() + 10**9))
    assert [b.id for b in loader.current().budgets] == ["a", "b"] and loader.last_error
