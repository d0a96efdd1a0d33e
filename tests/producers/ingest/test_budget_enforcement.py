"""Budget enforcement through the real ingest HTTP server (`run_ingest` on a loopback port), with
budget state produced to the real broker's `budget.state` topic from the money library's accountant.

Webhook filter: an exhausted block budget's scope is refused (402, reason naming the budget) and the
refusal is published with `_gateledger` (the processors turn it into a rejected WebhookDecision);
other scopes, budgets under their limit, alert-only budgets and non-priced methods pass; a rolling
window sliding on, a calendar period rolling over and a limit raised in the budgets file unblock.
AxonFlow tap: the official SDK gets `BudgetExceededError` from a 402 answered by gateledger without
AxonFlow seeing the pre-check; the exchange is published and becomes a blocked PolicyDecision.
"""

from __future__ import annotations

import asyncio
import base64
import re
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from axonflow import AxonFlow
from axonflow.exceptions import BudgetExceededError

from gateledger import jsonutil
from gateledger.contracts.envelope import Envelope
from gateledger.money.accounting import BudgetBook
from gateledger.money.settings import MoneySettings
from gateledger.net import free_port
from gateledger.settings import Settings
from gateledger.topics import Topic
from producers.ingest.server import run_ingest
from producers.ingest.settings import IngestSettings
from stream_processors.normalize.axonflow import decision_from_precheck
from stream_processors.normalize.webhook import decision_from_filter
from tests.inprocess import serving_in_process
from tests.producers.budgetstate import (
    OffsetClock,
    cost,
    publish_snapshots,
    snapshots_of,
    wait_enforcement,
    write_budgets,
)
from tests.producers.kafkaread import read_topic
from tests.producers.fake_axonflow import FakeAxonFlow


@pytest.fixture(autouse=True)
def _no_sdk_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXONFLOW_TELEMETRY", "off")


BUDGETS = {"budgets": [
    # A tool budget: acme's GitHub server, per UTC day.
    {"name": "acme-github-day", "scope": {"tenant": "acme", "mcp_server": "ms-github"}, "period": "day",
     "limit_usd": "0.01", "action": "block"},
    # Under its limit: never blocks.
    {"name": "acme-slack-day", "scope": {"tenant": "acme", "mcp_server": "ms-slack"}, "period": "day",
     "limit_usd": "1", "action": "block"},
    # Exhausted, but alert-only: never blocks.
    {"name": "acme-watch", "scope": {"tenant": "acme"}, "period": "day", "limit_usd": "0.001", "action": "alert"},
    # Rolling 6 h for one user, whatever the server.
    {"name": "bob-burst", "scope": {"user": "bob"}, "period": "rolling", "hours": 6, "limit_usd": "0.05",
     "action": "block"},
    # A calendar month in Berlin for the whole globex tenant (AxonFlow pre-checks).
    {"name": "globex-month", "scope": {"tenant": "globex"}, "period": "month", "timezone": "Europe/Berlin",
     "limit_usd": "2", "action": "block"},
]}


def _spend(now: datetime, budgets) -> BudgetBook:
    book = BudgetBook(budgets)
    tool = dict(kind="tool", model=None, tool_name="search_issues")
    book.apply_cost(cost("0.006", now, mcp_server_id="ms-github", user_id="alice", **tool), now=now)
    book.apply_cost(cost("0.006", now, mcp_server_id="ms-github", user_id="carol", **tool), now=now)  # 0.012 >= 0.01
    book.apply_cost(cost("0.5", now, mcp_server_id="ms-slack", user_id="alice", **tool), now=now)
    book.apply_cost(cost("0.06", now - timedelta(hours=1), tenant="initech", user_id="bob"), now=now)
    book.apply_cost(cost("2.5", now, tenant="globex", client_id="agent-7", user_id="gus"), now=now)
    return book


@asynccontextmanager
async def serving(settings: Settings, clock: OffsetClock, **ingest_kw) -> AsyncIterator[str]:
    """The ingest service as `gateledger serve ingest` runs it, on a free loopback port."""
    port = free_port()
    ingest = IngestSettings(port=port, **ingest_kw)
    async with serving_in_process(lambda stop: run_ingest(settings, stop, ingest=ingest, clock=clock), port,
                                  attempts=200, stop_timeout_s=20) as base:
        yield base


def _tool_call(name: str = "search_issues", rid: int = 1) -> bytes:
    return jsonutil.dumps({"jsonrpc": "2.0", "id": rid, "method": "tools/call",
                           "params": {"name": name, "arguments": {"q": "is:open"},
                                      "_meta": {"io.modelcontextprotocol/clientInfo": {"name": "cursor"}}}})


async def _filter(s: aiohttp.ClientSession, base: str, tenant: str, user: str, server: str,
                  body: bytes | None = None) -> tuple[int, dict]:
    headers = {"X-Gateledger-Tenant": tenant, "X-Obot-User-Id": user, "X-Obot-Mcp-Server-Id": server,
               "Content-Type": "application/json"}
    async with s.post(f"{base}/v1/obot/webhook", data=body or _tool_call(), headers=headers) as r:
        return r.status, await r.json()


def test_webhook_filter_enforces_block_budgets(settings: Settings) -> None:
    clock = OffsetClock.midday()  # injected: the test's "now" is never near a period boundary
    now = clock()
    path = MoneySettings().budgets_path(settings.core)
    budgets = write_budgets(path, BUDGETS)
    book = _spend(now, budgets)
    snaps = snapshots_of(book, now)

    async def main() -> None:
        await publish_snapshots(settings, snaps)
        async with serving(settings, clock) as base, aiohttp.ClientSession() as s:
            state = await wait_enforcement(base, len(snaps))
            assert state["enabled"] and not state["stale"]
            # Exhausted block budget for this scope: refused, the reason names the budget.
            status, body = await _filter(s, base, "acme", "alice", "ms-github")
            assert status == 402 and body["accept"] is False and body["policy"] == "budgets"
            assert body["reason"].startswith("budget 'acme-github-day' exhausted: $0.012 spent of $0.01")
            # Other scopes pass: another server (its budget under limit; acme-watch exhausted but alert-only),
            # another tenant, a method that costs nothing, a response half.
            assert (await _filter(s, base, "acme", "alice", "ms-slack"))[0] == 200
            assert (await _filter(s, base, "initech", "alice", "ms-github"))[0] == 200
            tools_list = jsonutil.dumps({"jsonrpc": "2.0", "id": 3, "method": "tools/list", "params": {}})
            assert (await _filter(s, base, "acme", "alice", "ms-github", tools_list))[0] == 200
            response = jsonutil.dumps({"jsonrpc": "2.0", "id": 1, "result": {"content": []}})
            assert (await _filter(s, base, "acme", "alice", "ms-github", response))[0] == 200
            # Rolling: bob's last 6 h are over his limit on any tenant and server...
            status, body = await _filter(s, base, "initech", "bob", "ms-jira")
            assert status == 402 and "'bob-burst'" in body["reason"] and "in the last 6 hours" in body["reason"]
            # ... until the window slides past the spend (an hour later than 6 h after it).
            clock.offset = timedelta(hours=5, minutes=31)
            assert (await _filter(s, base, "initech", "bob", "ms-jira"))[0] == 200
            clock.offset = timedelta()
            # Calendar: the next UTC day is a new period.
            assert (await _filter(s, base, "acme", "alice", "ms-github"))[0] == 402
            clock.offset = timedelta(days=1)
            assert (await _filter(s, base, "acme", "alice", "ms-github"))[0] == 200
            clock.offset = timedelta()
            # Raising the limit in the budgets file unblocks at once (no new spend needed).
            raised = {"budgets": [dict(b, limit_usd="0.02") if b["name"] == "acme-github-day" else b
                                  for b in BUDGETS["budgets"]]}
            await asyncio.sleep(0.01)  # a different mtime
            write_budgets(path, raised)
            assert (await _filter(s, base, "acme", "alice", "ms-github"))[0] == 200

        events = await read_topic(settings, Topic.RAW_OBOT_WEBHOOK, want=10)
        rejected = [e for e in events if e["data"]["_gateledger"]["decision"] == "rejected"]
        assert len(events) == 10 and len(rejected) == 3
        first = next(e for e in rejected if e["data"]["_gateledger"]["details"]["budget_id"] == "acme-github-day")
        verdict = first["data"]["_gateledger"]
        assert verdict["status"] == 402 and verdict["policy"] == "budgets"
        assert verdict["details"] == {"enforcement": "blocked", "budget_id": "acme-github-day",
                                      "budget_name": "acme-github-day", "spend_usd": "0.012", "limit_usd": "0.01",
                                      "period_key": f"day:{now.date().isoformat()}"}
        # The processors read it as a rejected webhook decision with the reason: the refusal is audited.
        decision = decision_from_filter(Envelope.model_validate({k: v for k, v in first.items() if k != "_key"}))
        assert decision.decision.value == "rejected" and decision.reason == verdict["reason"]
        assert decision.mcp_server_id == "ms-github" and decision.tool_name == "search_issues"

    asyncio.run(main())


def _reason(raw: bytes) -> str:
    return jsonutil.loads(raw)["block_reason"]


def _per_call(raw: bytes) -> bytes:
    """AxonFlow's budget-block bytes with the parts that differ per call (uuid, time) blanked."""
    raw = re.sub(rb'"context_id":"[0-9a-f-]{36}"', b'"context_id":"-"', raw)
    return re.sub(rb'"expires_at":"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d{1,9})?Z"', b'"expires_at":"-"', raw)


def test_axonflow_precheck_budget_block_with_the_official_sdk(settings: Settings) -> None:
    clock = OffsetClock.midday()
    now = clock()
    budgets = write_budgets(MoneySettings().budgets_path(settings.core), BUDGETS)
    snaps = snapshots_of(_spend(now, budgets), now)
    upstream_api = FakeAxonFlow()

    async def main() -> None:
        await publish_snapshots(settings, snaps)
        async with TestServer(upstream_api.app(), host="127.0.0.1") as upstream:
            async with serving(settings, clock, axonflow_upstream_url=str(upstream.make_url(""))) as base:
                await wait_enforcement(base, len(snaps))
                async with AxonFlow(endpoint=f"{base}/axonflow", client_id="globex", client_secret="s3cret") as sdk:
                    with pytest.raises(BudgetExceededError) as ours:
                        await sdk.get_policy_approved_context(user_token="utok-gus-123456", query="summarize Q3",
                                                              context={"request_id": "req-b1", "user_id": "gus"})
                    assert upstream_api.n == 0, "a budget block is answered without asking AxonFlow"
                async with aiohttp.ClientSession() as s:
                    async with s.post(f"{base}/axonflow/api/policy/pre-check", headers={"X-Tenant-ID": "globex"},
                                      json={"client_id": "agent-7", "user_token": "t", "query": "q"}) as r:
                        ours_raw = (r.status, r.headers["Content-Type"], await r.read())
                # The same SDK against AxonFlow itself answering its own budget block for the same budget.
                upstream_api.budget_block = (_reason(ours_raw[2]), "globex-month")
                async with AxonFlow(endpoint=str(upstream.make_url("")), client_id="globex",
                                    client_secret="s3cret") as sdk:
                    with pytest.raises(BudgetExceededError) as theirs:
                        await sdk.get_policy_approved_context(user_token="utok-gus-123456", query="summarize Q3",
                                                              context={"request_id": "req-b1", "user_id": "gus"})
                async with aiohttp.ClientSession() as s:
                    async with s.post(str(upstream.make_url('/api/policy/pre-check')), headers={"X-Tenant-ID": "globex"},
                                      json={"client_id": "agent-7", "user_token": "t", "query": "q"}) as r:
                        theirs_raw = (r.status, r.headers["Content-Type"], await r.read())
                upstream_api.budget_block, upstream_api.n = None, 0
                # Same exception, same message, same attributes as for AxonFlow's own block.
                assert type(ours.value) is type(theirs.value) and str(ours.value) == str(theirs.value)
                assert ours.value.details == theirs.value.details == {
                    "budget_id": "globex-month", "budget_name": "globex-month", "used_usd": 2.5, "limit_usd": 2,
                    "action": "block"}
                # Byte for byte AxonFlow's answer, but for the per-call uuid and time.
                assert ours_raw[:2] == theirs_raw[:2] == (402, "application/json")
                assert _per_call(ours_raw[2]) == _per_call(theirs_raw[2])
                # Another tenant (whose budgets are not exhausted for this scope) is forwarded and approved.
                async with AxonFlow(endpoint=f"{base}/axonflow", client_id="acme", client_secret="s3cret") as sdk:
                    ok = await sdk.get_policy_approved_context(user_token="utok-alice-1234", query="hello")
                    assert ok.approved and upstream_api.n == 1
                # Next month (in Berlin) the budget has a fresh period: forwarded again.
                clock.offset = timedelta(days=32)
                async with AxonFlow(endpoint=f"{base}/axonflow", client_id="globex", client_secret="s3cret") as sdk:
                    ok = await sdk.get_policy_approved_context(user_token="utok-gus-123456", query="summarize Q4")
                    assert ok.approved and upstream_api.n == 2

        events = await read_topic(settings, Topic.RAW_AXONFLOW, want=4)
        blocked = [e for e in events if e["data"]["status"] == 402]
        assert len(events) == 4 and len(blocked) == 2
        ex = next(e for e in blocked if e.get("request_id") == "req-b1")
        assert ex["tenant"] == "globex" and ex["data"]["answered_by"] == "gateledger"
        assert ex["data"]["upstream_latency_ms"] is None
        decision = decision_from_precheck(Envelope.model_validate({k: v for k, v in ex.items() if k != "_key"}))
        assert decision.approved is False and decision.http_status == 402
        assert decision.budget_id == "globex-month" and decision.budget_exceeded is True
        assert decision.policies == ["budget_exceeded"] and "globex-month" in decision.block_reason
        assert decision.user_id == "gus"

    asyncio.run(main())


def test_axonflow_budget_check_uses_only_the_authenticated_tenant(settings: Settings) -> None:
    """globex's block budget is exhausted: a globex client cannot dodge it by naming another tenant
    (X-Tenant-ID or context.tenant_id outside its token: 403; the Basic client id wins over the body), and
    nothing it sends moves the
    check onto another tenant's budgets."""
    clock = OffsetClock.midday()  # injected: never near a period boundary
    now = clock()
    budgets = write_budgets(MoneySettings().budgets_path(settings.core), BUDGETS)
    snaps = snapshots_of(_spend(now, budgets), now)
    upstream_api = FakeAxonFlow()

    async def main() -> None:
        await publish_snapshots(settings, snaps)
        async with TestServer(upstream_api.app(), host="127.0.0.1") as upstream:
            async with serving(settings, clock, axonflow_upstream_url=str(upstream.make_url("")),
                               axonflow_tokens={"tok-g": ["globex"], "tok-a": ["acme"]}) as base:
                await wait_enforcement(base, len(snaps))
                body = {"client_id": "agent-7", "user_token": "t", "query": "q", "context": {"tenant_id": "acme"}}
                globex = "Basic " + base64.b64encode(b"globex:s3cret").decode()
                async with aiohttp.ClientSession() as s:
                    for headers, status in (
                        ({"X-Gateledger-Token": "tok-g", "Authorization": globex}, 402),
                        ({"X-Gateledger-Token": "tok-g", "Authorization": globex, "X-Tenant-ID": "acme"}, 403),
                        # No header names a tenant: the body's context.tenant_id does, and the token refuses it.
                        ({"X-Gateledger-Token": "tok-g"}, 403),
                        ({"Authorization": globex, "X-Tenant-ID": "acme"}, 401),
                    ):
                        async with s.post(f"{base}/axonflow/api/policy/pre-check", json=body, headers=headers) as r:
                            assert r.status == status, headers
                    assert upstream_api.n == 0
                    # acme's own token: acme's budgets, not exhausted for this scope -> forwarded.
                    async with s.post(f"{base}/axonflow/api/policy/pre-check", json=body,
                                      headers={"X-Gateledger-Token": "tok-a"}) as r:
                        assert r.status == 200 and upstream_api.n == 1

    asyncio.run(main())


def test_stale_view_fails_open_by_default_and_closed_when_asked(settings: Settings, tmp_path: Path) -> None:
    """A view that never caught up (the broker it follows does not answer): fail-open lets calls through,
    fail-closed refuses the calls a block budget covers, and only those."""
    write_budgets(MoneySettings().budgets_path(settings.core), BUDGETS)
    dead = f"127.0.0.1:{free_port()}"  # nothing listens: the follower can never catch up

    async def main() -> None:
        import producers.ingest.enforcement as enforcement_mod

        real = enforcement_mod.BudgetStateFollower

        class Unreachable(real):  # the same follower, pointed at a broker that is not there
            def __init__(self, kafka, target, view):
                super().__init__(kafka, type(target)(dead, target.tansu, target.topic_prefix), view)

        enforcement_mod.BudgetStateFollower = Unreachable
        try:
            for mode, expected in (("open", 200), ("closed", 402)):
                async with serving(settings, OffsetClock(), enforce_when_stale=mode) as base, \
                        aiohttp.ClientSession() as s:
                    async with s.get(f"{base}/healthz") as r:
                        state = (await r.json())["enforcement"]
                    assert state["stale"] and not state["caught_up"], "readiness does not wait for the view"
                    status, body = await _filter(s, base, "acme", "alice", "ms-github")
                    assert status == expected, body
                    if mode == "closed":
                        assert "budget state unavailable" in body["reason"] and "acme-github-day" in body["reason"]
                    # No block budget covers this scope: never refused for staleness.
                    assert (await _filter(s, base, "initech", "alice", "ms-github"))[0] == 200
        finally:
            enforcement_mod.BudgetStateFollower = real

    asyncio.run(main())


def test_enforcement_off(settings: Settings) -> None:
    clock = OffsetClock.midday()
    now = clock()
    budgets = write_budgets(MoneySettings().budgets_path(settings.core), BUDGETS)
    snaps = snapshots_of(_spend(now, budgets), now)

    async def main() -> None:
        await publish_snapshots(settings, snaps)
        async with serving(settings, clock, enforce_budgets=False) as base, aiohttp.ClientSession() as s:
            async with s.get(f"{base}/healthz") as r:
                assert "enforcement" not in await r.json()
            assert (await _filter(s, base, "acme", "alice", "ms-github"))[0] == 200

    asyncio.run(main())


def test_empty_budget_state_is_current_at_once_and_enforcement_follows_the_budgets_file(settings: Settings) -> None:
    """No snapshot yet: the view is current as soon as it has read the (empty) topic, nothing is refused;
    with only alert budgets enforcement is off by default, a block budget added to the file turns it on."""
    path = MoneySettings().budgets_path(settings.core)
    write_budgets(path, {"budgets": [b for b in BUDGETS["budgets"] if b["action"] == "alert"]})

    async def main() -> None:
        async with serving(settings, OffsetClock()) as base, aiohttp.ClientSession() as s:
            state = await wait_enforcement(base, 0)
            assert state["enabled"] is False and state["stale"] is False
            await asyncio.sleep(0.01)
            write_budgets(path, BUDGETS)
            async with s.get(f"{base}/healthz") as r:
                assert (await r.json())["enforcement"]["enabled"] is True
            assert (await _filter(s, base, "acme", "alice", "ms-github"))[0] == 200, "no spend: nothing refused"

    asyncio.run(main())
