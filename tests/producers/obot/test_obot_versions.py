"""The Obot poller against each version line of the Obot API (<= v0.14, v0.15-v0.23, v0.24+), on the real broker.

The fake (tests/producers/fake_obot_api.py) refuses what upstream refuses; the first test checks the
fake itself, so a poller test passing against it means something.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp.test_utils import TestServer

from gateledger.kafka import ensure_gateledger_topics, resolve
from gateledger.masking import Masker
from gateledger.settings import Settings
from gateledger.topics import Topic
from producers import telemetry
from producers.obot.poller import ObotPoller
from producers.publisher import Publisher
from tests.producers.fake_obot_api import FakeObotApi
from tests.producers.kafkaread import read_topic
from tests.producers.obot.test_obot_poller import live_poller, poller_settings

NOW = datetime.now(UTC).replace(microsecond=0)
AUTH = {"Authorization": "Bearer obot-api-key"}


async def _get(http: aiohttp.ClientSession, base: str, path: str, **params: str) -> tuple[int, Any]:
    async with http.get(base + path, params=params, headers=AUTH) as r:
        return r.status, (await r.json() if r.content_type == "application/json" else await r.text())


def test_the_fake_refuses_what_obot_refuses() -> None:
    async def main() -> None:
        new, old, oldest = FakeObotApi(version="0.24"), FakeObotApi(version="0.23"), FakeObotApi(version="0.14")
        for api in (new, old, oldest):
            api.add_mcp(3, NOW - timedelta(days=90), step_s=1, api_key_id=7)
        new.add_local(2, NOW - timedelta(minutes=5), step_s=1)
        new.add_llm(2, NOW - timedelta(minutes=5), step_s=1, api_key_id=42)
        async with (TestServer(new.app(), host="127.0.0.1") as s24, TestServer(old.app(), host="127.0.0.1") as s23,
                    TestServer(oldest.app(), host="127.0.0.1") as s14, aiohttp.ClientSession() as http):
            b24, b23, b14 = (str(s.make_url("")).rstrip("/") for s in (s24, s23, s14))
            status, body = await _get(http, b24, "/api/mcp-audit-logs", sort_by="created_at")
            assert status == 400 and "not supported for mixed audit logs" in body["error"]
            single = await _get(http, b24, "/api/mcp-audit-logs", sort_by="created_at", event_type="mcp_call")
            assert single[0] == 200, "one source: its own columns are valid sort keys"
            assert (await _get(http, b24, "/api/mcp-audit-logs", sort_order="up"))[0] == 400
            assert (await _get(http, b24, "/api/mcp-audit-logs", source_type="mcp"))[0] == 400
            status, body = await _get(http, b24, "/api/mcp-audit-logs", sort_by="timestamp", sort_order="asc")
            assert status == 200 and set(body) == {"items", "total", "limit", "offset"} and body["limit"] == 100
            assert body["total"] == 5, "no default start_time: 90-day-old rows are listed"
            assert [i["eventType"] for i in body["items"]] == ["mcp_call"] * 3 + ["local_agent_tool_call"] * 2
            assert all("details" not in i for i in body["items"]), "list items carry no details"
            status, body = await _get(http, b24, "/api/mcp-audit-logs", start_time="2026-01-01 00:00:00")
            assert status == 200 and body["total"] == 5, "a non-RFC 3339 start_time is ignored, not refused"
            status, body = await _get(http, b24, "/api/mcp-audit-logs/detail/1")
            assert status == 200 and body["details"]["trace"]["sessionID"] == "sess-1"
            assert (await _get(http, b24, "/api/mcp-audit-logs/detail/x1"))[0] == 400
            status, body = await _get(http, b24, "/api/llm-audit-logs")
            assert status == 200 and body["items"][0]["apiKeyID"] == 42, "apiKeyID is a JSON number"
            assert (await _get(http, b23, "/api/llm-audit-logs"))[0] == 404
            status, body = await _get(http, b23, "/api/mcp-audit-logs", sort_by="timestamp", sort_order="asc")
            assert status == 200 and body["items"][0]["id"] == 3, "an unknown key falls back to created_at DESC"
            assert "requestMutated" in body["items"][0]
            status, body = await _get(http, b14, "/api/mcp-audit-logs")
            assert status == 200 and body["limit"] == 0 and "requestMutated" not in body["items"][0]
            assert (await _get(http, b14, "/api/mcp-audit-logs/detail/1"))[0] == 404
        user = FakeObotApi(version="0.24", role="user")
        async with TestServer(user.app(), host="127.0.0.1") as s, aiohttp.ClientSession() as http:
            base = str(s.make_url("")).rstrip("/")
            assert (await _get(http, base, "/api/mcp-audit-logs", event_type="local_agent_tool_call"))[0] == 403
            # MCP-only for a non-admin: a single source, so created_at is a valid key.
            assert (await _get(http, base, "/api/mcp-audit-logs", sort_by="created_at"))[0] == 200

    asyncio.run(main())


async def _poll(settings: Settings, ps: Any, tmp_path: Path, streams: tuple[str, ...]) -> int:
    target = resolve(settings.kafka, settings.core)
    async with Publisher(settings.kafka, target) as pub, aiohttp.ClientSession() as session:
        poller = ObotPoller(ps, pub, Masker(salt=b"s"), tmp_path)
        return sum([await poller.poll_stream(session, s) for s in streams])


def test_v024_mixed_list_lands_mcp_local_agent_and_llm_calls_each_once(settings: Settings, tmp_path: Path) -> None:
    api = FakeObotApi(version="0.24")
    api.add_mcp(23, NOW - timedelta(minutes=30), step_s=10, tie=3, api_key_id=7)
    api.add_local(12, NOW - timedelta(minutes=25), step_s=30)
    api.add_llm(15, NOW - timedelta(minutes=20), step_s=5, tie=2, api_key_id=42)
    details = telemetry.POLLER_DETAILS.labels(result="fetched")

    async def main() -> None:
        await ensure_gateledger_topics(settings.kafka, resolve(settings.kafka, settings.core))
        before = details._value.get()  # noqa: SLF001
        async with TestServer(api.app(), host="127.0.0.1") as server:
            ps = poller_settings(str(server.make_url("")), tmp_path)
            assert await _poll(settings, ps, tmp_path, ("mcp", "llm")) == 23 + 12 + 15
            # Late: a device that was offline reports calls from 3 hours ago, recorded now.
            api.add_local(4, NOW - timedelta(hours=3), step_s=1, recorded=NOW - timedelta(seconds=5))
            assert await _poll(settings, ps, tmp_path, ("mcp", "llm")) == 4
            assert await _poll(settings, ps, tmp_path, ("mcp", "llm")) == 0
        assert api.refused == [], "no request refused"
        mcp_lists = [q for s, q in api.requests if s == "mcp" and "start_time" in q]
        assert {(q["sort_by"], q["sort_order"]) for q in mcp_lists} == {("timestamp", "asc")}
        assert details._value.get() - before == 23 + 12 + 4, "one detail look-up per record"  # noqa: SLF001
        raw = await read_topic(settings, Topic.RAW_OBOT_MCP, want=39)
        assert len(raw) == 39 and len({e["id"] for e in raw}) == 39, "nothing skipped, nothing twice"
        by_type: dict[str, list[dict[str, Any]]] = {}
        for e in raw:
            by_type.setdefault(e["type"], []).append(e)
        assert len(by_type["obot.mcp.audit_event"]) == 23 and len(by_type["obot.local_agent.tool_call"]) == 16
        mcp = by_type["obot.mcp.audit_event"][0]
        assert mcp["session_id"] and mcp["data"]["details"]["trace"]["requestID"], "details fetched"
        local = by_type["obot.local_agent.tool_call"]
        late = [e for e in local if e["data"]["timestamp"]["occurredAt"] < (NOW - timedelta(hours=2)).isoformat()]
        assert len(late) == 4 and all(e["time"] > e["data"]["timestamp"]["occurredAt"] for e in late), \
            "local-agent envelopes carry Obot's recordedAt; the device's time stays in data"
        llm = await read_topic(settings, Topic.RAW_OBOT_LLM, want=15)
        assert len(llm) == 15 and {e["data"]["apiKeyID"] for e in llm} == {"42"}

    asyncio.run(main())


def test_v023_has_no_llm_list_and_the_poller_does_not_back_off(settings: Settings, tmp_path: Path) -> None:
    api = FakeObotApi(version="0.23")
    api.add_mcp(17, NOW - timedelta(minutes=10), step_s=20)

    async def main() -> None:
        async with live_poller(settings, api, tmp_path) as (poller, session):
            results = [await poller.cycle(session) for _ in range(6)]
        assert results == [True] * 6, "a missing LLM list is not a failure"
        assert len([1 for s, _ in api.requests if s == "llm"]) == 1, "asked once (again after probe_interval_s)"
        assert len([1 for s, _ in api.requests if s == "mcp"]) >= 6
        assert {q["sort_by"] for s, q in api.requests if s == "mcp"} == {"created_at"}
        events = await read_topic(settings, Topic.RAW_OBOT_MCP, want=17)
        assert len(events) == 17 and {e["type"] for e in events} == {"obot.mcp.call"}

    asyncio.run(main())


def test_v014_flat_records_without_limit_default_or_detail(settings: Settings, tmp_path: Path) -> None:
    api = FakeObotApi(version="0.14")
    api.add_mcp(26, NOW - timedelta(minutes=10), step_s=5, tie=2)

    async def main() -> None:
        async with live_poller(settings, api, tmp_path) as (poller, session):
            assert await poller.cycle(session) is True
        assert [p for p, _, _ in api.refused] == ["/api/llm-audit-logs"], "only the version probe is a 404"
        assert not [1 for s, _ in api.requests if s == "detail"]
        events = await read_topic(settings, Topic.RAW_OBOT_MCP, want=26)
        assert len({e["id"] for e in events}) == 26

    asyncio.run(main())


def test_v024_non_admin_key_reads_mcp_calls_only(settings: Settings, tmp_path: Path) -> None:
    api = FakeObotApi(version="0.24", role="user")
    api.add_mcp(9, NOW - timedelta(minutes=10), step_s=5)
    api.add_local(3, NOW - timedelta(minutes=9), step_s=5)

    async def main() -> None:
        async with live_poller(settings, api, tmp_path) as (poller, session):
            results = [await poller.cycle(session) for _ in range(3)]
        assert results == [True] * 3, "no backoff for what a key may not read"
        # The late sweep and the LLM list each asked once, got 403 (auditlog.go authorizeAuditLogSources,
        # authz.go) and stopped asking; the probe for the version line is the first LLM request.
        assert sorted(p for p, _, _ in api.refused) == ["/api/llm-audit-logs", "/api/llm-audit-logs",
                                                       "/api/mcp-audit-logs"]
        events = await read_topic(settings, Topic.RAW_OBOT_MCP, want=9)
        assert len(events) == 9 and {e["type"] for e in events} == {"obot.mcp.audit_event"}

    asyncio.run(main())
