"""The AxonFlow tap, driven by the official `axonflow` SDK against a local upstream in AxonFlow's wire format."""

from __future__ import annotations

import asyncio
import base64
from collections import Counter
from datetime import UTC, datetime
from typing import Any

import aiohttp
import orjson
import pytest
from aiohttp.test_utils import TestServer
from axonflow import AxonFlow
from axonflow.exceptions import AxonFlowError, PolicyViolationError
from axonflow.types import TokenUsage

from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import LlmCallStatus
from gateledger.kafka import KafkaTarget
from gateledger.money.catalog import load_catalog
from gateledger.money.cost import llm_cost
from gateledger.settings import Settings
from gateledger.stack.broker import TansuBroker
from gateledger.topics import Topic
from producers.ingest.settings import IngestSettings
from stream_processors.normalize.axonflow import call_from_axonflow_audit
from stream_processors.normalize.axonflow import decision_from_precheck
from tests.producers.fake_axonflow import FakeAxonFlow
from tests.producers.ingestutil import ingest_client
from tests.producers.kafkaread import read_topic


@pytest.fixture(autouse=True)
def _no_sdk_telemetry(monkeypatch: pytest.MonkeyPatch) -> None:
    # The SDK pings its vendor once a week unless told not to; this machine has no internet anyway.
    monkeypatch.setenv("AXONFLOW_TELEMETRY", "off")


def test_sdk_through_the_tap_records_both_calls_and_passes_everything_else(settings: Settings, tmp_path) -> None:
    upstream_api = FakeAxonFlow()
    broker = TansuBroker(log_path=tmp_path / "own-broker.log")  # stopped below: never the session broker
    broker.start()
    target = KafkaTarget(broker.bootstrap, True, settings.core.topic_prefix)

    async def main() -> None:
        async with TestServer(upstream_api.app(), host="127.0.0.1") as upstream:
            ingest = IngestSettings(axonflow_upstream_url=str(upstream.make_url("")), publish_timeout_s=2.0)
            async with ingest_client(settings, ingest, target=target) as http:
                base = str(http.make_url("/axonflow"))
                async with AxonFlow(endpoint=base, client_id="acme", client_secret="s3cret-value") as sdk:
                    assert await sdk.health_check() is True
                    ok = await sdk.get_policy_approved_context(
                        user_token="utok-alice-123456", query="summarize ticket 42 for alice@example.com",
                        data_sources=["jira"], context={"request_id": "req-1", "agent_framework": "langgraph"},
                    )
                    assert ok.approved and ok.context_id == "ctx-1"
                    audit = await sdk.audit_llm_call(
                        context_id=ok.context_id, response_summary="ticket 42 is open", provider="openai",
                        model="gpt-4o", token_usage=TokenUsage(prompt_tokens=120, completion_tokens=30, total_tokens=150),
                        latency_ms=840,
                    )
                    assert audit.success and audit.audit_id == "aud-ctx-1"
                    with pytest.raises(PolicyViolationError):
                        await sdk.get_policy_approved_context(user_token="utok-bob-123456", query="x; DROP TABLE users")
                # Pass-through streams both ways, headers kept.
                async with aiohttp.ClientSession() as raw:
                    async with raw.post(f"{base}/api/v1/stream?x=1", data=b"y" * 100_000,
                                        headers={"Authorization": "Bearer other-scheme", "X-Custom": "1"}) as r:
                        assert r.status == 200 and r.headers["X-Upstream"] == "yes"
                        assert (await r.text()).count("of 100000") == 5
                # Kafka down: the upstream answered, the exchange cannot be recorded -> 503.
                await asyncio.to_thread(broker.stop)
                async with AxonFlow(endpoint=base, client_id="acme", client_secret="s3cret-value") as sdk:
                    with pytest.raises(AxonFlowError, match="503"):
                        await sdk.get_policy_approved_context(user_token="utok-carol-1234", query="hello")
                    assert await sdk.health_check() is True, "pass-through does not need Kafka"
                await asyncio.to_thread(broker.start)  # so the publisher's shutdown flush is quick

    try:
        asyncio.run(main())
        # Everything the upstream saw arrived unchanged, credentials included.
        creds = "Basic " + base64.b64encode(b"acme:s3cret-value").decode()
        prechecks = [s for s in upstream_api.seen if s[1] == "/api/policy/pre-check"]
        assert len(prechecks) == 3 and all(s[2]["Authorization"] == creds for s in prechecks)
        stream = next(s for s in upstream_api.seen if s[1].startswith("/api/v1/stream"))
        assert stream[1] == "/api/v1/stream?x=1" and stream[2]["Authorization"] == "Bearer other-scheme"
        assert stream[2]["X-Custom"] == "1" and len(stream[3]) == 100_000
    finally:
        broker.stop()


def test_recorded_exchanges_on_kafka(settings: Settings) -> None:
    upstream_api = FakeAxonFlow()

    async def main() -> list[dict[str, Any]]:
        async with TestServer(upstream_api.app(), host="127.0.0.1") as upstream:
            ingest = IngestSettings(axonflow_upstream_url=str(upstream.make_url("")))
            async with ingest_client(settings, ingest) as http:
                base = str(http.make_url("/axonflow"))
                async with AxonFlow(endpoint=base, client_id="acme", client_secret="s3cret-value") as sdk:
                    ok = await sdk.get_policy_approved_context(
                        user_token="utok-alice-123456", query="summarize ticket 42 for alice@example.com",
                        context={"request_id": "req-1"},
                    )
                    await sdk.audit_llm_call(
                        context_id=ok.context_id, response_summary="done", provider="openai", model="gpt-4o",
                        token_usage=TokenUsage(prompt_tokens=120, completion_tokens=30, total_tokens=150), latency_ms=840,
                    )
                    with pytest.raises(PolicyViolationError):
                        await sdk.get_policy_approved_context(user_token="utok-bob-123456", query="DROP TABLE x")
                    await sdk.health_check()
                # Not AxonFlow at all: the upstream's answer is passed on, the exchange dead-lettered.
                r = await http.post("/axonflow/api/policy/pre-check", data=b"not json")
                assert r.status == 500  # the fake upstream's own failure on non-JSON
        return await read_topic(settings, Topic.RAW_AXONFLOW, want=3)

    events = asyncio.run(main())
    assert len(events) == 3, "health checks are not recorded"
    by_type = {(e["type"], e["data"]["status"]): e for e in events}
    pre = by_type[("axonflow.precheck", 200)]
    blocked = by_type[("axonflow.precheck", 403)]
    audit = by_type[("axonflow.llm_audit", 200)]
    assert pre["tenant"] == "acme" and pre["context_id"] == "ctx-1" and pre["request_id"] == "req-1"
    assert pre["_key"] == audit["_key"] == "ctx-1"
    assert pre["data"]["request"]["user_token"].startswith("hmac:")
    assert "alice@example.com" not in str(pre["data"]) and "s3cret" not in str(events)
    assert pre["data"]["response"]["approved"] is True and pre["data"]["upstream_latency_ms"] >= 0
    assert audit["data"]["response"] == {"success": True, "audit_id": "aud-ctx-1"}, "decoded from gzip for the record"
    assert audit["data"]["request"]["token_usage"]["total_tokens"] == 150
    assert blocked["data"]["response"]["block_reason"] == "SQL injection detected"
    letters = asyncio.run(read_topic(settings, Topic.DEAD_LETTERS, want=1))
    assert [d["reason"] for d in letters] == ["schema"] and "not json" in letters[0]["original"]


def test_run_ingest_serves_the_tap_on_its_own_port_too(settings: Settings) -> None:
    """The service as `gateledger serve ingest` runs it: tap under /axonflow and at the root of its own port."""
    from gateledger.net import free_port
    from producers.ingest.drain import Drain
    from producers.ingest.server import run_ingest

    upstream_api = FakeAxonFlow()

    async def main() -> None:
        async with TestServer(upstream_api.app(), host="127.0.0.1") as upstream:
            port, tap_port = free_port(), free_port()
            ingest = IngestSettings(port=port, axonflow_upstream_url=str(upstream.make_url("")),
                                    axonflow_port=tap_port, body_read_timeout_s=1.0)
            stop = asyncio.Event()
            task = asyncio.create_task(run_ingest(settings, stop, ingest=ingest))
            try:
                for _ in range(100):
                    try:
                        async with aiohttp.ClientSession() as s, s.get(f"http://127.0.0.1:{port}/healthz") as r:
                            if r.status == 200:
                                break
                    except aiohttp.ClientError:
                        await asyncio.sleep(0.1)
                for base in (f"http://127.0.0.1:{port}/axonflow", f"http://127.0.0.1:{tap_port}"):
                    async with AxonFlow(endpoint=base, client_id="acme", client_secret="x") as sdk:
                        ok = await sdk.get_policy_approved_context(user_token="utok-1234567", query="hello")
                        assert ok.approved
                # The tap's own port has the ingest's middlewares: odd headers refused, drained on stop.
                odd = (b"POST /api/policy/pre-check HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 2\r\n"
                       b"Authorization: Bearer \xff\xfe\r\nConnection: close\r\n\r\n{}")
                assert await _raw_http(tap_port, odd) == 401
                # A slow-loris body on either door of the tap: 408 body_timeout, counted, never forwarded.
                calls = len(upstream_api.seen)
                for door, prefix in ((tap_port, ""), (port, "/axonflow")):
                    before = _rejected("axonflow-tap", "body_timeout")
                    answer = await _slow_loris(door, f"{prefix}/api/policy/pre-check")
                    assert answer.startswith(b"HTTP/1.1 408") and b'"body_timeout"' in answer, answer[:300]
                    assert _rejected("axonflow-tap", "body_timeout") == before + 1
                assert len(upstream_api.seen) == calls
                Drain.start()
                async with aiohttp.ClientSession() as s, s.post(f"http://127.0.0.1:{tap_port}/api/policy/pre-check",
                                                                json={}) as r:
                    assert r.status == 503 and r.headers["Retry-After"]
            finally:
                Drain.draining = False
                stop.set()
                await asyncio.wait_for(task, 20)
        events = await read_topic(settings, Topic.RAW_AXONFLOW, want=2)
        assert sorted(e["context_id"] for e in events) == ["ctx-1", "ctx-2"]

    asyncio.run(main())


def _rejected(source: str, reason: str) -> float:
    from prometheus_client import REGISTRY
    return REGISTRY.get_sample_value("gateledger_ingest_rejected_records_total",
                                     {"source": source, "reason": reason}) or 0.0


async def _slow_loris(port: int, path: str) -> bytes:
    """Announce a 100-byte body, send a few bytes and stall: the server's whole answer (it must end it)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                     f"Content-Length: 100\r\n\r\n{{\"query\": ".encode())
        await writer.drain()
        return await asyncio.wait_for(reader.read(), 30)  # read() to EOF: the server closed the connection
    finally:
        writer.close()


async def _raw_http(port: int, request: bytes) -> int:
    """The status of a hand-written HTTP/1.1 request (headers any client library would refuse to send)."""
    reader, writer = await asyncio.open_connection("127.0.0.1", port)
    try:
        writer.write(request)
        await writer.drain()
        status_line = await reader.readline()
        return int(status_line.split()[1])
    finally:
        writer.close()
        await writer.wait_closed()


def test_tap_authenticates_callers_and_scopes_tenants(settings: Settings) -> None:
    """Default-deny with tokens: unknown callers 401, a tenant outside the token 403, odd headers 400/401,
    never 500 and never forwarded; the SDK works through the path token; one tenant per exchange."""
    upstream_api = FakeAxonFlow()
    upstream_api.revoked.add("mallory")
    upstream_api.budget_warning = "budget 'acme-warn' at 104% of $10"
    basic_acme = "Basic " + base64.b64encode(b"acme:s3cret-value").decode()
    trace = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

    async def main() -> list[dict[str, Any]]:
        async with TestServer(upstream_api.app(), host="127.0.0.1") as upstream:
            ingest = IngestSettings(axonflow_upstream_url=str(upstream.make_url("")),
                                    axonflow_tokens={"tok-acme": ["acme"], "tok-pair": ["acme", "initech"],
                                                     "tok-mallory": ["mallory"]})
            async with ingest_client(settings, ingest) as http:
                pre = {"client_id": "acme", "user_token": "utok-1234567", "query": "hi"}
                refusals = [
                    ({}, 401, "unauthenticated"),
                    ({"X-Gateledger-Token": "tok-nobody"}, 401, "unauthenticated"),
                    ({"Proxy-Authorization": "Bearer tok-nobody"}, 401, "unauthenticated"),
                    # A token that may not speak for the tenant the request names (forged X-Tenant-ID).
                    ({"X-Gateledger-Token": "tok-acme", "X-Tenant-ID": "globex"}, 403, "tenant_not_allowed"),
                    ({"X-Gateledger-Token": "tok-acme", "Authorization": "Basic "
                      + base64.b64encode(b"globex:x").decode()}, 403, "tenant_not_allowed"),
                    ({"X-Gateledger-Token": "tok-pair"}, 400, "tenant_required"),
                ]
                for headers, status, reason in refusals:
                    for path in ("/axonflow/api/policy/pre-check", "/axonflow/api/audit/llm-call"):
                        r = await http.post(path, json=pre, headers=headers)
                        assert (r.status, (await r.json())["reason"]) == (status, reason), (headers, path)
                r = await http.get("/axonflow/health")
                assert r.status == 401, "pass-through is authenticated too"
                # Bytes no client library sends: non-ASCII token, tenant, AxonFlow credentials.
                port = http.server.port
                for line, status in ((b"X-Gateledger-Token: tok-\xe9\xe9", 401), (b"X-Tenant-ID: acm\xc3\xa9", 400),
                                     # AxonFlow's own credentials, unreadable: the ingest's header check
                                     # answers 401 bad_header (docs/ingest.md, Refusals) before the tap.
                                     (b"Authorization: Basic \xff\xfe", 401),
                                     # An oversized trace header: refused before anything is forwarded.
                                     (b"X-Gateledger-Token: tok-acme\r\ntraceparent: 00-" + b"0" * 5000, 400),
                                     # A control character: aiohttp's HTTP parser answers 400 itself.
                                     (b"X-Gateledger-Token: \x01tok", 400)):
                    raw = (b"POST /axonflow/api/policy/pre-check HTTP/1.1\r\nHost: 127.0.0.1\r\n"
                           b"Content-Type: application/json\r\nContent-Length: 2\r\nConnection: close\r\n"
                           + line + b"\r\n\r\n{}")
                    assert await _raw_http(port, raw) == status, line
                assert upstream_api.seen == [], "nothing refused reached AxonFlow"

                # The SDK, token in the URL: recorded under the token's tenant, token never forwarded.
                async with AxonFlow(endpoint=str(http.make_url("/axonflow/t/tok-acme")), client_id="acme",
                                    client_secret="s3cret-value") as sdk:
                    ok = await sdk.get_policy_approved_context(user_token="utok-1234567", query="q",
                                                               extra_headers={"traceparent": trace})
                    assert ok.approved
                # A client whose AxonFlow credentials AxonFlow refuses: its audit is a 401, recorded as such.
                async with AxonFlow(endpoint=str(http.make_url("/axonflow/t/tok-mallory")), client_id="mallory",
                                    client_secret="revoked") as sdk:
                    with pytest.raises(AxonFlowError):
                        await sdk.audit_llm_call(context_id="ctx-forged", response_summary="x", provider="openai",
                                                 model="gpt-4o", token_usage=TokenUsage(
                                                     prompt_tokens=90_000, completion_tokens=9_000,
                                                     total_tokens=99_000), latency_ms=5)
                r = await http.post("/axonflow/api/policy/pre-check", json=pre,
                                    headers={"X-Gateledger-Token": "tok-pair", "X-Tenant-ID": "initech",
                                             "Authorization": basic_acme})
                assert r.status == 200, "X-Tenant-ID honoured inside what the token allows"
        assert all("tok-" not in s[1] and "X-Gateledger-Token" not in s[2] for s in upstream_api.seen)
        return await read_topic(settings, Topic.RAW_AXONFLOW, want=3)

    events = asyncio.run(main())
    assert len(events) == 3
    # Refusals of identified callers (403, 400) are dead-lettered with their reason and body; 401s and the
    # header refusals before anyone is identified keep no body: they are counted into one letter per
    # caller, route, reason and window (docs/ingest.md, Refusals), written when the server stops. Of the
    # odd headers only the oversized traceparent, refused by the tap after authentication, keeps its body;
    # the control character is refused by aiohttp's HTTP parser before any of gateledger's code runs, and
    # counted all the same (bad_request, origin http:aiohttp).
    letters = asyncio.run(read_topic(settings, Topic.DEAD_LETTERS, want=14))
    kept = [d for d in letters if d["first_at"] is None]
    assert sorted(d["reason"] for d in kept) == ["bad_header", "tenant_not_allowed", "tenant_not_allowed",
                                                 "tenant_not_allowed", "tenant_not_allowed", "tenant_required",
                                                 "tenant_required"]
    assert all(d["count"] == 1 and d["caller"] == "127.0.0.1" and d["http_status"] in (400, 403) for d in kept)
    coalesced = [d for d in letters if d["first_at"] is not None]
    counted: Counter[tuple[str, int]] = Counter()
    for d in coalesced:
        counted[(d["reason"], d["http_status"])] += d["count"]
        assert d["original"] == "" and d["caller"] == "127.0.0.1" and "tok-" not in orjson.dumps(d).decode(), d
    # 3 unknown callers x 2 recorded paths + the pass-through GET; three odd headers before identification;
    # the request aiohttp's parser refused.
    assert counted == {("unauthenticated", 401): 7, ("bad_header", 401): 2, ("bad_header", 400): 1,
                       ("bad_request", 400): 1}, counted
    assert [d["origin"] for d in coalesced if d["reason"] == "bad_request"] == ["http:aiohttp"]
    by_tenant = {e["tenant"]: e for e in events}
    assert set(by_tenant) == {"acme", "mallory", "initech"}
    acme = by_tenant["acme"]
    assert acme["trace_id"] == "4bf92f3577b34da6a3ce929d0e0e4736" and acme["data"]["traceparent"] == trace
    assert acme["data"]["budget_warning"] == "budget 'acme-warn' at 104% of $10"
    decision = decision_from_precheck(Envelope.model_validate({k: v for k, v in acme.items() if k != "_key"}))
    assert decision.budget_warning == "budget 'acme-warn' at 104% of $10" and decision.approved
    assert decision.trace_id == "4bf92f3577b34da6a3ce929d0e0e4736"
    assert "tok-acme" not in str(events)
    refused = by_tenant["mallory"]
    assert refused["type"] == "axonflow.llm_audit" and refused["data"]["status"] == 401
    # The processors read it as what it was: a refused audit, no tokens, not a successful call.
    call = call_from_axonflow_audit(Envelope.model_validate({k: v for k, v in refused.items() if k != "_key"}))
    assert call.status == LlmCallStatus.ERROR and "audit refused by AxonFlow: HTTP 401" in call.error
    assert call.total_tokens == 0 and not call.tokens_reported
    entry = llm_cost(call, load_catalog(), computed_at=datetime.now(UTC)).entry
    assert entry.total_cost_usd == 0 and not entry.unpriced, "never billable"
    assert "no charge" in entry.pricing_note
