"""AxonFlow's MCP checks, /decide and audit trail around the tap, then the processors worker on the real broker.

The official SDK asks AxonFlow (a fake enforcing mcp_handler.go's rules) through the tap; Obot's
audit of the tool calls that then ran is published as the poller would. A tool call that ran after
check-input blocked it (joined on the W3C trace AxonFlow correlates on) is a ``policy_bypass``;
the allowed one is not.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer
from axonflow import AxonFlow
from axonflow.types import TokenUsage

from gateledger.masking import Masker
from gateledger.settings import Settings
from gateledger.topics import Topic
from producers.axonflow.poller import AxonFlowAuditPoller
from producers.axonflow.settings import AxonFlowPollerSettings
from producers.ingest.settings import IngestSettings
from producers.publisher import Publisher
from tests import samples
from tests.conftest import Processes
from tests.producers.ingestutil import ingest_client
from tests.producers.test_axonflow_tap import FakeAxonFlow
from tests.stream_processors.harness import Outputs, ensure_topics, envelope, publish, start_worker, wait_outputs

BLOCKED_TRACE = "0af7651916cd43dd8448eb211c80319c"
ALLOWED_TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(autouse=True)
def _no_sdk_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AXONFLOW_TELEMETRY", "off")


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
                                                               processes: Processes, tmp_path: Path) -> None:
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

    def done(o: Outputs) -> bool:
        return len(o.final(Topic.POLICY_DECISIONS)) == 4 and len(o.final(Topic.MCP_CALLS)) == 2 and any(
            f["kind"] == "policy_bypass" for f in o.final(Topic.FINDINGS).values())

    out = asyncio.run(wait_outputs(settings, done))
    decisions = {(d["gate"], d["trace_id"]): d for d in out.final(Topic.POLICY_DECISIONS).values()}
    blocked = decisions[("mcp_check_input", BLOCKED_TRACE)]
    assert blocked["approved"] is False and blocked["http_status"] == 403 and blocked["tool_name"] == "delete_repo"
    assert blocked["mcp_servers"] == ["github"] and blocked["decision_id"]
    assert decisions[("mcp_check_input", ALLOWED_TRACE)]["approved"] is True
    assert decisions[("mcp_check_output", ALLOWED_TRACE)]["approved"] is True
    assert decisions[("decide", ALLOWED_TRACE)]["approved"] is True
    bypasses = [f for f in out.final(Topic.FINDINGS).values() if f["kind"] == "policy_bypass"]
    assert len(bypasses) == 1, bypasses
    calls = {c["tool_name"]: c for c in out.final(Topic.MCP_CALLS).values()}
    assert set(bypasses[0]["evidence_event_ids"]) == {blocked["id"], *calls["delete_repo"]["event_ids"]}
    assert "check-input blocked it" in bypasses[0]["description"]
    by_trace = {i["trace_id"]: i for i in out.final(Topic.INTERACTIONS).values()}
    assert by_trace[BLOCKED_TRACE]["status"] == "bypass"
    assert by_trace[ALLOWED_TRACE]["status"] != "bypass"
    assert not out.all(Topic.DEAD_LETTERS)


def test_llm_call_axonflow_logged_but_the_tap_never_saw_is_untapped(
        settings: Settings, gl_env: dict[str, str], processes: Processes, tmp_path: Path) -> None:
    """One call through the tap, one straight to AxonFlow: the poller reads AxonFlow's audit trail and
    only the direct call becomes an ``untapped_llm_call``; a second poll publishes nothing again."""
    target = asyncio.run(ensure_topics(settings))
    upstream_api = FakeAxonFlow()

    async def traffic_and_poll() -> tuple[int, int]:
        async with TestServer(upstream_api.app(), host="127.0.0.1") as upstream:
            ingest = IngestSettings(axonflow_upstream_url=str(upstream.make_url("")))
            async with ingest_client(settings, ingest) as http:
                async with AxonFlow(endpoint=str(http.make_url("/axonflow")), client_id="acme",
                                    client_secret="s3cret") as sdk:
                    ok = await sdk.get_policy_approved_context(user_token="utok-1234567", query="hello")
                    await sdk.audit_llm_call(context_id=ok.context_id, response_summary="hi", provider="openai",
                                             model="gpt-4o", token_usage=TokenUsage(
                                                 prompt_tokens=10, completion_tokens=5, total_tokens=15), latency_ms=9)
            # A client pointed at AxonFlow itself: AxonFlow logs the call, the tap never sees it.
            async with AxonFlow(endpoint=str(upstream.make_url("")), client_id="acme", client_secret="s3cret") as sdk:
                direct = await sdk.get_policy_approved_context(user_token="utok-1234567", query="hello")
                await sdk.audit_llm_call(context_id=direct.context_id, response_summary="hi", provider="openai",
                                         model="gpt-4o-mini", token_usage=TokenUsage(
                                             prompt_tokens=10, completion_tokens=5, total_tokens=15), latency_ms=9)
            poll = AxonFlowPollerSettings(url=str(upstream.make_url("")), client_id="acme", client_secret="s3cret",
                                          tenant="acme", page_size=1)  # one row a page: paging exercised
            async with Publisher(settings.kafka, target, timeout_s=8) as pub, aiohttp.ClientSession() as session:
                poller = AxonFlowAuditPoller(poll, pub, Masker(salt=b"test-salt"), session, tmp_path / "ckpt")
                later = datetime.now(UTC) + timedelta(seconds=poll.settle_s + 1)
                return await poller.poll_once(now=later), await poller.poll_once(now=later)

    first, again = asyncio.run(traffic_and_poll())
    assert (first, again) == (2, 0), "both audit rows published once; the checkpoint skips them next time"
    # Raised once the tenant's time passes a row's time + orphan_grace_s with no tap record of its context.
    start_worker(processes, gl_env, tmp_path, orphan_grace_s=1)

    def done(o: Outputs) -> bool:
        return any(f["kind"] == "untapped_llm_call" for f in o.final(Topic.FINDINGS).values()) \
            and len(o.final(Topic.LLM_CALLS)) == 1

    out = asyncio.run(wait_outputs(settings, done))
    untapped = [f for f in out.final(Topic.FINDINGS).values() if f["kind"] == "untapped_llm_call"]
    assert [f["context_id"] for f in untapped] == ["ctx-2"], untapped
    assert "gpt-4o-mini" in untapped[0]["description"] and untapped[0]["tenant"] == "acme"
    assert not out.all(Topic.DEAD_LETTERS)
