"""AxonFlow's MCP checks, /decide and audit trail around the tap, on the real stack: the real broker, the
processors worker, the sink into chDB, asserted through the analysts' views.

The official SDK asks AxonFlow (a fake enforcing mcp_handler.go's rules) through the tap; Obot's
audit of the tool calls that then ran is published as the poller would. A tool call that ran after
check-input blocked it (joined on the W3C trace AxonFlow correlates on) is a ``policy_bypass``;
the allowed one is not. Calls AxonFlow logged that never passed the tap are ``untapped_llm_call``
findings, and the LLM calls among them are filled in, costed and counted in budgets.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from axonflow import AxonFlow
from axonflow.types import TokenUsage

from dashboards import alert_rules, grafana_sql
from gateledger.masking import Masker
from sinks.clickhouse.main import run_sink
from gateledger.settings import Settings
from producers.axonflow.poller import AxonFlowAuditPoller
from producers.axonflow.settings import AxonFlowPollerSettings
from producers.ingest.settings import IngestSettings
from producers.publisher import Publisher
from sinks.clickhouse.settings import SinkSettings
from stream_processors.normalize.axonflow_trail import AUDIT_TRAIL_USAGE_NOTE
from tests import samples
from tests.conftest import Processes
from tests.producers.ingestutil import ingest_client
from tests.producers.fake_axonflow import FakeAxonFlow
from tests.sinks.conftest import wait_caught_up
from tests.stream_processors.harness import ensure_topics, envelope, publish, start_worker, worker_env

BLOCKED_TRACE = "0af7651916cd43dd8448eb211c80319c"
WARNING = "budget acme-warn at 104% of $10"
ALLOWED_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(autouse=True)
def _no_sdk_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXONFLOW_TELEMETRY", "off")


Rows = list[dict[str, Any]]


def view(ch: Any, db: str, name: str, where: str = "1") -> Rows:
    """Rows of an analysts' view (``<table>_latest(tenant, since, until)``), every tenant (the /decide
    below is sent without AxonFlow credentials: tenant ``default``)."""
    res = ch.query(f"SELECT * FROM {db}.{name}(tenant = '', since = '2000-01-01', until = '2100-01-01') "
                   f"WHERE {where}")
    return [dict(zip(res.column_names, r, strict=True)) for r in res.result_rows]


def _counts(settings: Settings, ch: Any) -> dict[str, Any]:
    db = settings.clickhouse.database
    tables = ("raw_events", "policy_decisions", "mcp_calls", "llm_calls", "findings", "interactions", "cost_ledger",
              "budget_alerts", "dead_letters")
    out: dict[str, Any] = {t: ch.query(f"SELECT count() FROM {db}.{t}").result_rows[0][0] for t in tables}
    out["findings"] = ch.query(f"SELECT kind, context_id FROM {db}.findings").result_rows
    out["interactions"] = ch.query(f"SELECT trace_id, status, version FROM {db}.interactions").result_rows
    out["dead_letters"] = ch.query(f"SELECT reason, error FROM {db}.dead_letters").result_rows
    return out


def land(settings: Settings, ch: Any, done: Callable[[], bool], timeout_s: float = 90) -> None:
    """Run the sink in this process until ``done()`` holds over chDB and it committed all there was."""
    async def main() -> None:
        stop = asyncio.Event()
        sink = asyncio.create_task(run_sink(settings, stop))
        deadline = time.monotonic() + timeout_s
        try:
            while not await asyncio.to_thread(done):
                assert time.monotonic() < deadline, f"the expected rows never landed: {_counts(settings, ch)}"
                assert not sink.done(), sink.result()
                await asyncio.sleep(0.5)
            await wait_caught_up(settings, SinkSettings())
        finally:
            stop.set()
            await sink

    asyncio.run(main())


def _tp(trace: str) -> str:
    return f"00-{trace}-b7ad6b7169203331-01"


def _tool_call(row: int, tool: str, trace: str, at: datetime) -> dict:
    """Obot's audit of one tools/call that ran (the server answered 200), carrying the caller's trace."""
    return samples.obot_flat(
        id=row, createdAt=at.isoformat().replace("+00:00", "Z"), callIdentifier=tool, requestID=str(row),
        sessionID=f"sess-{row}", webhookStatuses=[],
        requestBody={"jsonrpc": "2.0", "id": row, "method": "tools/call",
                     "params": {"name": tool, "arguments": {"repo": "acme/site"}, "_meta": {"traceparent": _tp(trace)}}},
        responseBody={"jsonrpc": "2.0", "id": row, "result": {"content": [], "isError": False}},
    )


def test_tool_call_after_check_input_block_is_a_policy_bypass(settings: Settings, gl_env: dict[str, str],
                                                               processes: Processes, tmp_path: Path,
                                                               ch_client: Any) -> None:
    asyncio.run(ensure_topics(settings))
    upstream_api = FakeAxonFlow()

    async def ask_axonflow() -> None:
        async with TestServer(upstream_api.app(), host="127.0.0.1") as upstream:
            ingest = IngestSettings(axonflow_upstream_url=str(upstream.make_url("")))
            async with ingest_client(settings, ingest) as http:
                async with AxonFlow(endpoint=str(http.make_url("/axonflow")), client_id="acme",
                                    client_secret="s3cret") as sdk:
                    no = await sdk.mcp_check_input("github", "DROP TABLE repos", tool="delete_repo",
                                                   extra_headers={"traceparent": _tp(BLOCKED_TRACE)})
                    assert no.allowed is False and no.block_reason.startswith("SQL injection")
                    yes = await sdk.mcp_check_input("github", "list open issues", tool="search_issues",
                                                    extra_headers={"traceparent": _tp(ALLOWED_TRACE)})
                    assert yes.allowed is True
                    out = await sdk.mcp_check_output("github", message="3 issues", tool="search_issues",
                                                     extra_headers={"traceparent": _tp(ALLOWED_TRACE)})
                    assert out.allowed is True
                async with aiohttp.ClientSession() as s:
                    async with s.post(str(http.make_url("/axonflow/api/v1/decide")),
                                      json={"stage": "tool", "query": "search issues",
                                            "target": {"type": "tool", "server": "github", "tool": "search_issues"}},
                                      headers={"traceparent": _tp(ALLOWED_TRACE)}) as r:
                        assert r.status == 200 and (await r.json())["verdict"] == "allow"

    asyncio.run(ask_axonflow())
    ran = datetime.now(UTC) + timedelta(seconds=2)
    asyncio.run(publish(settings, [
        envelope("obot-audit", _tool_call(3001, "delete_repo", BLOCKED_TRACE, ran)),
        envelope("obot-audit", _tool_call(3002, "search_issues", ALLOWED_TRACE, ran)),
    ]))
    start_worker(processes, gl_env, tmp_path, interaction_timeout_s=3)
    db = settings.clickhouse.database

    def done() -> bool:
        return len(view(ch_client, db, "policy_decisions_latest")) == 4 \
            and len(view(ch_client, db, "mcp_calls_latest")) == 2 \
            and bool(view(ch_client, db, "findings_latest", "kind = 'policy_bypass'")) \
            and bool(view(ch_client, db, "interactions_latest", f"trace_id = '{BLOCKED_TRACE}' AND status = 'bypass'"))

    land(settings, ch_client, done)
    decisions = {(d["gate"], d["trace_id"]): d for d in view(ch_client, db, "policy_decisions_latest")}
    blocked = decisions[("mcp_check_input", BLOCKED_TRACE)]
    assert blocked["approved"] is False and blocked["http_status"] == 403 and blocked["tool_name"] == "delete_repo"
    assert blocked["mcp_servers"] == ["github"] and blocked["decision_id"]
    assert decisions[("mcp_check_input", ALLOWED_TRACE)]["approved"] is True
    assert decisions[("mcp_check_output", ALLOWED_TRACE)]["approved"] is True
    assert decisions[("decide", ALLOWED_TRACE)]["approved"] is True
    bypasses = view(ch_client, db, "findings_latest", "kind = 'policy_bypass'")
    assert len(bypasses) == 1, bypasses
    calls = {c["tool_name"]: c for c in view(ch_client, db, "mcp_calls_latest")}
    assert set(bypasses[0]["evidence_event_ids"]) == {blocked["id"], *calls["delete_repo"]["event_ids"]}
    assert "check-input blocked it" in bypasses[0]["description"]
    by_trace = {i["trace_id"]: i for i in view(ch_client, db, "interactions_latest")}
    assert by_trace[BLOCKED_TRACE]["status"] == "bypass"
    assert by_trace[ALLOWED_TRACE]["status"] != "bypass"
    assert not view(ch_client, db, "dead_letters_latest")


def test_calls_axonflow_logged_but_the_tap_never_saw_are_untapped_and_fill_the_gap(
        settings: Settings, gl_env: dict[str, str], processes: Processes, tmp_path: Path, ch_client: Any) -> None:
    """One Gateway Mode call through the tap; one Gateway Mode call and one proxy-mode call straight to
    AxonFlow. The poller reads AxonFlow's audit trail: both direct calls are ``untapped_llm_call``
    findings; the proxy-mode one (the only one whose LLM call the trail shows) becomes an LLM call,
    costed and counted in a budget; the tapped call is never counted twice; a second poll publishes
    nothing again. AxonFlow's budget warning on the tapped pre-check lands beside the budget alert."""
    target = asyncio.run(ensure_topics(settings))
    upstream_api = FakeAxonFlow()

    async def traffic_and_poll() -> tuple[int, int]:
        async with TestServer(upstream_api.app(), host="127.0.0.1") as upstream:
            ingest = IngestSettings(axonflow_upstream_url=str(upstream.make_url("")))
            async with ingest_client(settings, ingest) as http:
                async with AxonFlow(endpoint=str(http.make_url("/axonflow")), client_id="acme",
                                    client_secret="s3cret") as sdk:
                    upstream_api.budget_warning = WARNING  # AxonFlow's own warn-action budget is over its limit
                    ok = await sdk.get_policy_approved_context(user_token="utok-1234567", query="hello")
                    upstream_api.budget_warning = None
                    await sdk.audit_llm_call(context_id=ok.context_id, response_summary="hi", provider="openai",
                                             model="gpt-4o", token_usage=TokenUsage(
                                                 prompt_tokens=10, completion_tokens=5, total_tokens=15), latency_ms=9)
            # Clients pointed at AxonFlow itself: AxonFlow logs the calls, the tap never sees them.
            async with AxonFlow(endpoint=str(upstream.make_url("")), client_id="acme", client_secret="s3cret") as sdk:
                direct = await sdk.get_policy_approved_context(user_token="utok-1234567", query="hello")
                await sdk.audit_llm_call(context_id=direct.context_id, response_summary="hi", provider="openai",
                                         model="gpt-4o-mini", token_usage=TokenUsage(
                                             prompt_tokens=10, completion_tokens=5, total_tokens=15), latency_ms=9)
                proxied = await sdk.proxy_llm_call("utok-1234567", "summarise the ticket", "chat", {"model": "gpt-4o"})
                assert proxied.success
            poll = AxonFlowPollerSettings(url=str(upstream.make_url("")), client_id="acme", client_secret="s3cret",
                                          tenant="acme", page_size=2)  # three rows: paging exercised
            async with Publisher(settings.kafka, target, timeout_s=8) as pub, aiohttp.ClientSession() as session:
                poller = AxonFlowAuditPoller(poll, pub, Masker(salt=b"test-salt"), session, tmp_path / "ckpt")
                later = datetime.now(UTC) + timedelta(seconds=poll.settle_s + 1)
                return await poller.poll_once(now=later), await poller.poll_once(now=later)

    first, again = asyncio.run(traffic_and_poll())
    assert (first, again) == (3, 0), "two gateway verdict rows and one LLM row once; the checkpoint skips them next time"
    budgets = tmp_path / "budgets.yaml"
    # 0.01 USD: the tapped call (0.000075) alone stays far below; the gap call (1200 tokens) crosses it.
    budgets.write_text('budgets:\n  - {name: acme-24h, scope: {tenant: acme}, period: rolling, hours: 24, '
                       'limit_usd: "0.01"}\n')
    start_worker(processes, gl_env | {"GATELEDGER_BUDGETS_FILE": str(budgets)}, tmp_path, orphan_grace_s=1,
                 audit_gap_fill_s=2)
    db = settings.clickhouse.database

    def done() -> bool:
        return len(view(ch_client, db, "findings_latest", "kind = 'untapped_llm_call'")) == 2 \
            and len(view(ch_client, db, "cost_ledger_latest")) == 2 \
            and bool(view(ch_client, db, "budget_alerts_latest", "threshold_pct >= 100"))

    land(settings, ch_client, done)
    untapped = view(ch_client, db, "findings_latest", "kind = 'untapped_llm_call'")
    assert sorted(f["context_id"] for f in untapped) == ["ctx-2", "req-3"], untapped
    rows = view(ch_client, db, "llm_calls_latest")
    assert sorted(c["context_id"] for c in rows) == ["ctx-1", "req-3"], "the tapped call once, the gap call filled in"
    calls = {c["context_id"]: c for c in rows}
    assert (calls["ctx-1"]["input_tokens"], calls["ctx-1"]["output_tokens"], calls["ctx-1"]["usage_note"]) == (10, 5, "")
    gap = calls["req-3"]
    assert (gap["model"], gap["output_tokens"], gap["latency_ms"]) == ("gpt-4o", 1200, 420)
    assert gap["usage_note"].startswith(AUDIT_TRAIL_USAGE_NOTE)
    cost = {c["event_id"]: c for c in view(ch_client, db, "cost_ledger_latest")}
    assert cost[gap["id"]]["total_cost_usd"] == Decimal("0.012"), "1200 tokens at gpt-4o's output rate"
    assert AUDIT_TRAIL_USAGE_NOTE in cost[gap["id"]]["pricing_note"]
    alerts = view(ch_client, db, "budget_alerts_latest", "threshold_pct >= 100")
    assert {a["budget_name"] for a in alerts} == {"acme-24h"}
    # AxonFlow's X-Budget-Warning on the tapped pre-check: a fact beside gateledger's own budget state.
    (warned,) = view(ch_client, db, "budget_warnings_latest")
    assert (warned["warning"], warned["gate"], warned["context_id"]) == (WARNING, "precheck", "ctx-1")
    signals = view(ch_client, db, "budget_signals_latest")
    assert {s["origin"] for s in signals} == {"gateledger", "axonflow"}
    assert [s["message"] for s in signals if s["origin"] == "axonflow"] == [WARNING]
    assert {s["budget_name"] for s in signals if s["origin"] == "gateledger"} == {"acme-24h"}
    # The Grafana rule beside the budget-ledger rules fires for it (its last 15 minutes).
    (rule,) = [r for r in alert_rules.rules() if r.uid == "gateledger-axonflow-budget-warning"]
    now = datetime.now(UTC)
    for since, want in ((now - timedelta(minutes=15), [("acme", "acme", WARNING, 1.0)]),
                        (now - timedelta(hours=2), [])):
        window = grafana_sql.TimeRange(since, since + timedelta(minutes=15) if not want else now, 60)
        sql = grafana_sql.expand(rule.data[0].model.raw_sql, window).replace("FROM policy_decisions",
                                                                             f"FROM {db}.policy_decisions")
        assert [tuple(r) for r in ch_client.query(sql).result_rows] == want
    assert not view(ch_client, db, "dead_letters_latest")
