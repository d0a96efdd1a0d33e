"""The enforcement read model: block budgets, scope applicability, calendar and rolling exhaustion."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from gateledger import jsonutil
from gateledger.contracts.budget_state import BudgetStateSnapshot
from gateledger.contracts.events import CostEntry, CostKind
from gateledger.contracts.wire.axonflow import go_json
from gateledger.money.accounting import BudgetBook, snapshot
from gateledger.money.budgets import parse_budgets
from gateledger.money.enforcement import EnforcementView, RequestScope
from gateledger.money.teams import TeamDirectory

T = datetime(2026, 3, 10, 12, tzinfo=UTC)
BUDGETS = parse_budgets({"budgets": [
    {"name": "acme-gpt-day", "scope": {"tenant": "acme", "model": "gpt-*"}, "period": "day",
     "timezone": "America/New_York", "limit_usd": "1", "action": "block"},
    {"name": "ml-team", "scope": {"team": "ml"}, "period": "month", "limit_usd": "2", "action": "block"},
    {"name": "acme-watch", "scope": {"tenant": "acme"}, "period": "day", "limit_usd": "0.5", "action": "alert"},
    {"name": "burst", "scope": {"user": "bob"}, "period": "rolling", "hours": 6, "limit_usd": "3", "action": "block"},
]})


def cost(i: int, amount: str, t: datetime = T, **kw) -> CostEntry:
    base = dict(id=f"c{i}", tenant="acme", time=t, kind=CostKind.LLM, event_id=f"e{i}", model="gpt-4o",
                user_id="alice", total_cost_usd=Decimal(amount), price_version="v", computed_at=t)
    base.update(kw)
    return CostEntry(**base)


def view_of(book: BudgetBook, at: datetime) -> EnforcementView:
    view = EnforcementView()
    for (bid, _), state in book.states.items():
        snap = snapshot(book.budgets[bid], state, at)
        # snapshots travel as JSON on the compacted topic
        assert view.update(BudgetStateSnapshot.model_validate(jsonutil.loads(jsonutil.dumps(snap.model_dump(mode="json")))))
    return view


def test_calendar_block_and_scope_applicability() -> None:
    book = BudgetBook(BUDGETS)
    book.apply_cost(cost(1, "0.6"), now=T)
    view = view_of(book, T)
    req = RequestScope(tenant="acme", user="alice", model="gpt-4o")
    assert not view.check(req, T).blocked, "alert-only budgets never block"
    book.apply_cost(cost(2, "0.4"), now=T)
    view = view_of(book, T)
    d = view.check(req, T + timedelta(hours=1))
    assert d.blocked and d.budget_id == "acme-gpt-day" and "'acme-gpt-day' exhausted" in d.reason
    assert d.spend_usd == Decimal("1.0") and d.period_key == "day:2026-03-10"
    assert not view.check(RequestScope(tenant="acme", model="claude-haiku-4-5"), T).blocked, "other model"
    assert not view.check(RequestScope(tenant="acme"), T).blocked, "model unknown at pre-check: does not apply"
    assert not view.check(RequestScope(tenant="beta", model="gpt-4o"), T).blocked
    # the next New York day is fresh
    assert not view.check(req, datetime(2026, 3, 11, 4, 30, tzinfo=UTC)).blocked
    precheck = d.axonflow_precheck(context_id="c-1", now_ns=1_773_100_800_120_000_000)
    # AxonFlow's PreCheckResponse / BudgetInfo (platform/agent/gateway_handlers.go): struct order,
    # float64 amounts, expires_at as Go marshals time.Now(), newline-terminated.
    assert go_json(precheck) == (
        b'{"context_id":"c-1","approved":false,"policies":["budget_exceeded"],"budget_info":{"budget_id":'
        b'"acme-gpt-day","budget_name":"acme-gpt-day","used_usd":1,"limit_usd":1,"percentage":100,"exceeded":true,'
        b'"action":"block"},"expires_at":"2026-03-10T00:00:00.12Z","block_reason":'
        + go_json(d.reason).rstrip() + b'}\n')
    assert d.HTTP_STATUS_BLOCKED == 402


def test_team_scope_needs_the_team() -> None:
    book = BudgetBook(BUDGETS)
    book.apply_cost(cost(1, "2.5", team="ml", model="claude-haiku-4-5"), now=T)
    view = view_of(book, T)
    teams = TeamDirectory.from_data({"teams": {"ml": ["alice"]}})
    assert not view.check(RequestScope(tenant="acme", user="alice"), T).blocked
    d = view.check(RequestScope(tenant="acme", user="alice").with_team(teams), T)
    assert d.blocked and d.budget_id == "ml-team"


def test_rolling_window_blocks_then_recovers() -> None:
    book = BudgetBook(BUDGETS)
    start = datetime(2026, 3, 10, 16, tzinfo=UTC)  # block [12:00, 18:00)
    for i in range(3):
        book.apply_cost(cost(i, "1", start + timedelta(minutes=30 * i), user_id="bob", model="x"), now=start)
    view = view_of(book, start)
    bob = RequestScope(user="bob")
    assert view.check(bob, start + timedelta(hours=1)).blocked
    # 18:30 is in the next block, which has no state of its own: the previous block's tail counts
    assert view.check(bob, datetime(2026, 3, 10, 18, 30, tzinfo=UTC)).blocked
    # six hours after the spend the window has moved past it
    assert not view.check(bob, datetime(2026, 3, 10, 22, 31, tzinfo=UTC)).blocked
    assert not view.check(RequestScope(user="alice"), start).blocked


def test_snapshot_order_and_pruning() -> None:
    book = BudgetBook(BUDGETS)
    book.apply_cost(cost(1, "2"), now=T)
    snaps = [snapshot(book.budgets[b], s, T) for (b, _), s in book.states.items()]
    view = EnforcementView()
    for s in snaps:
        view.update(s)
    old = snaps[0].model_copy(update={"seq": 0, "spend_usd": Decimal(0)})
    assert not view.update(old), "an older snapshot does not overwrite a newer one"
    assert view.age_seconds(T + timedelta(seconds=5)) == 5
    assert view.prune(T + timedelta(days=40)) == len(snaps) and view.snapshots == {}


def test_compiled_rules_match_like_scope_applies() -> None:
    """The view's compiled scope matching (the fast path) agrees with `scope_applies` everywhere."""
    from itertools import product

    from gateledger.money.enforcement import _Rule, scope_applies

    budgets = parse_budgets({"budgets": [
        *BUDGETS.model_dump(mode="json")["budgets"],
        {"name": "globs", "scope": {"tenant": ["acme", "glob*"], "model": ["claude-sonnet-4.5", "GPT-4?"],
                                    "mcp_server": "ms-[ab]*"}, "period": "day", "limit_usd": "1", "action": "block"},
    ]})
    values = {"tenant": [None, "acme", "globex", "globby"], "team": [None, "ml"], "user": [None, "bob", "alice"],
              "model": [None, "gpt-4o", "claude-sonnet-4-5", "gpt-41", "GPT-4O"], "mcp_server": [None, "ms-a1", "ms-c"]}
    for b in budgets.budgets:
        rule = _Rule.of_budget(b)
        scope = {d: list(v) for d, v in b.scope.constrained().items()}
        for combo in product(*values.values()):
            req = RequestScope(**dict(zip(values, combo, strict=True)))
            assert rule.applies(req) == scope_applies(scope, req), (b.name, req)
