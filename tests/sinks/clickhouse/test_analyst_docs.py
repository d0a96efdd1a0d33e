"""Every query in docs/analysts.md, run against chDB with data landed by the sink, and its answer checked
against what was published. A query added to the page without a check here fails the suite."""

from __future__ import annotations

import asyncio
import re
from collections import Counter, defaultdict
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateledger.settings import Settings
from gateledger.topics import Topic
from tests.sinks.conftest import publish, publish_events, running_sink, wait_caught_up
from tests.sinks.events import World

DOC = Path(__file__).resolve().parents[3] / "docs" / "analysts.md"
USER = "investigated-user"
TRAIL = "req-trail-1"


def documented_queries() -> dict[str, str]:
    """name -> SQL of every ```sql block that starts with ``-- name:``."""
    out = {}
    for block in re.findall(r"```sql\n(.*?)```", DOC.read_text(), flags=re.S):
        m = re.match(r"-- name: (\w+)\n", block)
        if m:
            assert m.group(1) not in out, f"two queries named {m.group(1)}"
            out[m.group(1)] = block
    return out


@pytest.fixture
def landed(settings: Settings, ch_client) -> dict[str, Any]:
    """A realistic data set with a planted investigation, landed through the sink."""
    w = World(seed=21)
    events = ([w.mcp_call() for _ in range(200)] + [w.llm_call() for _ in range(100)] + [w.cost() for _ in range(100)]
              + [w.policy() for _ in range(60)] + [w.webhook() for _ in range(60)]
              + [w.interaction() for _ in range(30)] + [w.finding(kind=k) for k in
                 ("unaudited_llm_call", "orphan_audit", "policy_bypass", "suspect_usage") for _ in range(5)]
              + [w.budget_alert() for _ in range(5)] + [w.dead_letter() for _ in range(10)])
    # The investigation: one user's request across every stage, and a pre-check never audited.
    audited = w.policy(tenant="acme", user_id=USER, approved=True, context_id="ctx-audited", request_id=TRAIL,
                       block_reason=None, policies=["pii_detection"])
    planted = [
        w.mcp_call(tenant="acme", user_id=USER, request_id=TRAIL, status="success"),
        w.mcp_call(tenant="acme", user_id=USER, request_id="req-other", status="denied"),
        w.llm_call(tenant="acme", user_id=USER, request_id=TRAIL, context_id="ctx-audited"),
        audited,
        w.policy(tenant="acme", user_id=USER, approved=True, context_id="ctx-never-audited", block_reason=None,
                 policies=["pii_detection"]),
        w.interaction(tenant="acme", user_id=USER, request_id=TRAIL),
        w.finding(tenant="acme", user_id=USER, kind="unaudited_llm_call", context_id="ctx-never-audited"),
        w.cost(tenant="acme", user_id=USER, team="platform"),
    ]
    # A restated cost: only its latest version may count.
    restated = events[300].model_copy(update={"version": 2, "restated": True,
                                              "total_cost_usd": events[300].total_cost_usd + Decimal("1.5")})
    raw = (b'{"id":"raw-investigated","source":"obot/x/mcp","type":"obot.mcp.call","tenant":"acme","time":"%s",'
           b'"received_at":"%s","subject":"%s","request_id":"%s","data":{"k":1}}'
           % (w.base.isoformat().encode(), w.base.isoformat().encode(), USER.encode(), TRAIL.encode()))

    async def main() -> None:
        async with running_sink(settings) as state:
            await publish_events(settings, events + planted)
            await publish_events(settings, [restated])
            await publish(settings, [(Topic.RAW_OBOT_MCP, "raw", raw)])
            await wait_caught_up(settings, state["sink"])

    asyncio.run(main())
    everything = events + planted
    latest = {e.id: e for e in everything}
    latest[restated.id] = restated
    return {"events": list(latest.values()), "planted": planted, "base": w.base}


def run(client: Any, db: str, sql: str, **params: Any) -> list[dict[str, Any]]:
    res = client.query(sql.replace("gateledger.", f"{db}."), parameters=params)
    return [dict(zip(res.column_names, row, strict=True)) for row in res.result_rows]


def of(events: list[Any], table: str, tenant: str = "acme") -> list[Any]:
    return [e for e in events if e.table == table and e.tenant == tenant]


def test_every_documented_query_runs_and_answers_right(settings: Settings, ch_client, landed: dict[str, Any]) -> None:
    db = settings.clickhouse.database
    queries = documented_queries()
    ev, planted = landed["events"], landed["planted"]
    today = datetime.now(UTC)
    params = {"tenant": "acme", "since": (landed["base"] - timedelta(days=1)).strftime("%Y-%m-%d"),
              "until": (today + timedelta(days=1)).strftime("%Y-%m-%d"), "user": USER, "request_id": TRAIL}
    checked: set[str] = set()

    def answer(name: str, **extra: Any) -> list[dict[str, Any]]:
        checked.add(name)
        return run(ch_client, db, queries[name], **(params | extra))

    mcp = of(ev, "mcp_calls")
    rows = answer("who_called_which_tool")
    assert sorted(r["request_id"] for r in rows) == sorted(e.request_id for e in mcp)
    assert {r["status"] for r in rows if r["user_id"] == USER} == {"success", "denied"}
    rows = answer("tool_outcomes_by_user")
    assert sum(r["calls"] for r in rows) == len(mcp)
    assert sum(r["denied"] for r in rows) == sum(e.status == "denied" for e in mcp)
    assert sum(r["failed"] for r in rows) == sum(e.status in ("failure", "timeout") for e in mcp)

    blocked = [e for e in of(ev, "policy_decisions") if not e.approved]
    rows = answer("blocked_by_policy")
    by_policy = Counter(p for e in blocked for p in e.policies)
    assert {r["policy"]: r["blocked"] for r in rows} == dict(by_policy) and blocked
    rows = answer("webhook_rejections")
    assert sum(r["rejected"] for r in rows) == sum(e.decision == "rejected" for e in of(ev, "webhook_decisions"))

    rows = answer("unaudited_llm_calls")
    assert "ctx-never-audited" in {r["context_id"] for r in rows}
    assert len(rows) == sum(e.kind == "unaudited_llm_call" for e in of(ev, "findings"))
    audited_ctx = {e.context_id for e in ev if e.table == "llm_calls"}
    expected = {e.context_id for e in of(ev, "policy_decisions") if e.approved and e.context_id not in audited_ctx}
    rows = answer("unaudited_llm_calls_from_facts")
    assert {r["context_id"] for r in rows} == expected and "ctx-never-audited" in expected
    assert "ctx-audited" not in expected
    rows = answer("findings_by_kind")
    assert {r["kind"]: r["findings"] for r in rows} == dict(Counter(str(e.kind) for e in of(ev, "findings")))

    costs = of(ev, "cost_ledger")
    spend: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for e in costs:
        spend[(e.provider, e.model)] += e.total_cost_usd
    rows = answer("spend_by_tenant_and_model")
    assert {(r["provider"], r["model"]): r["spend_usd"] for r in rows} == dict(spend)
    assert sum(r["entries"] for r in rows) == len(costs)
    rows = answer("spend_per_day")
    assert sum(r["spend_usd"] for r in rows) == sum(spend.values())
    per_user: dict[tuple[str, str], Decimal] = defaultdict(Decimal)
    for e in costs:
        per_user[(e.team, e.user_id)] += e.total_cost_usd
    rows = answer("top_spenders")
    assert rows[0]["spend_usd"] == max(per_user.values())

    rows = answer("user_activity")
    assert {r["id"] for r in rows} == {e.id for e in planted}
    assert [r["time"] for r in rows] == sorted(r["time"] for r in rows)
    assert {r["activity"] for r in rows} == {"mcp_call", "llm_call", "policy_decision", "interaction", "finding", "cost"}
    rows = answer("request_trail")
    assert {r["id"] for r in rows} == {e.id for e in planted if getattr(e, "request_id", None) == TRAIL}
    rows = answer("user_raw_events")
    assert [r["request_id"] for r in rows] == [TRAIL] and rows[0]["data"] == '{"k":1}'

    rows = answer("failing_tools")
    assert sum(r["total_calls"] for r in rows) == len(mcp)
    assert sum(r["total_errors"] for r in rows) == sum(e.status in ("failure", "timeout") for e in mcp)
    assert all(0 < r["latency_p50_p95_ms"][0] <= r["latency_p50_p95_ms"][1] for r in rows)
    rows = answer("dead_letters_by_reason")
    assert sum(r["letters"] for r in rows) == len(of(ev, "dead_letters"))

    # All tenants at once: '' is every tenant.
    assert len(run(ch_client, db, queries["who_called_which_tool"], **(params | {"tenant": ""}))) == len(
        [e for e in ev if e.table == "mcp_calls"])
    assert checked == set(queries), f"documented but unchecked: {set(queries) - checked}"
