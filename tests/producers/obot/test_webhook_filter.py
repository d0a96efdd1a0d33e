"""The Obot webhook filter: signatures, the decision recorded with the message, the policy extension point."""

from __future__ import annotations

import asyncio

import aiohttp

from gateledger import jsonutil
from gateledger.settings import Settings
from gateledger.topics import Topic
from producers.ingest.common import verify_hmac_sha256
from producers.ingest.settings import IngestSettings
from producers.obot.webhook import Decision, WebhookDelivery
from tests import samples
from tests.producers.ingestutil import ingest_client, sign
from tests.producers.kafkaread import read_topic

SECRET = "whsec-test"


def test_signature_check() -> None:
    body = b'{"jsonrpc":"2.0","id":1,"method":"ping"}'
    assert verify_hmac_sha256(SECRET.encode(), body, sign(SECRET, body))
    assert verify_hmac_sha256(SECRET.encode(), body, sign(SECRET, body, prefix=False))
    assert verify_hmac_sha256(SECRET.encode(), body, sign(SECRET, body).upper().replace("SHA256=", "sha256="))
    assert not verify_hmac_sha256(SECRET.encode(), body + b" ", sign(SECRET, body))
    assert not verify_hmac_sha256(b"other", body, sign(SECRET, body))
    assert not verify_hmac_sha256(SECRET.encode(), body, None)
    assert not verify_hmac_sha256(SECRET.encode(), body, "sha256=zz")


class BlockTool:
    """A policy as the budget stage will write one: reject calls of one tool."""

    name = "block-create-issue"

    def __init__(self) -> None:
        self.seen: list[WebhookDelivery] = []

    async def decide(self, delivery: WebhookDelivery) -> Decision:
        self.seen.append(delivery)
        if (delivery.message.get("params") or {}).get("name") == "create_issue":
            return Decision.reject("budget exhausted for acme/github", self.name, 403, budget_id="b-1")
        return Decision(True, policy=self.name)


def test_signed_deliveries_are_published_with_the_decision(settings: Settings) -> None:
    policy = BlockTool()

    async def main() -> None:
        ingest = IngestSettings(webhook_secret=SECRET, default_tenant="acme", install="prod")
        async with ingest_client(settings, ingest, decision_policy=policy) as http:
            ok = jsonutil.dumps(samples.webhook_message())
            headers = {"X-Obot-Signature-256": sign(SECRET, ok), "X-Obot-User-Id": "user-7",
                       "X-Obot-Mcp-Server-Id": "ms1abc", "Content-Type": "application/json"}
            r = await http.post("/v1/obot/webhook", data=ok, headers=headers)
            assert r.status == 200, await r.text()
            assert (await r.json())["accept"] is True
            # older Obot: bare hex (another message: the same bytes again would be a replay)
            ok8 = jsonutil.dumps(samples.webhook_message(id=8))
            r = await http.post("/v1/obot/webhook", data=ok8, headers={"X-Obot-Signature-256": sign(SECRET, ok8, False)})
            assert r.status == 200
            blocked = jsonutil.dumps(samples.webhook_message(params={"name": "create_issue", "arguments": {}}))
            r = await http.post("/v1/obot/webhook", data=blocked, headers={"X-Obot-Signature-256": sign(SECRET, blocked)})
            assert r.status == 403 and (await r.json())["reason"] == "budget exhausted for acme/github"
            # bad and missing signatures: 401, nothing published, the policy never asked
            asked = len(policy.seen)
            r = await http.post("/v1/obot/webhook", data=ok, headers={"X-Obot-Signature-256": sign("wrong", ok)})
            assert r.status == 401
            r = await http.post("/v1/obot/webhook", data=ok)
            assert r.status == 401
            assert len(policy.seen) == asked
            # signed but not JSON-RPC: 400 and a dead letter
            junk = b'{"hello": "world"}'
            r = await http.post("/v1/obot/webhook", data=junk, headers={"X-Obot-Signature-256": sign(SECRET, junk)})
            assert r.status == 400 and (await r.json())["reason"] == "schema"
        events = await read_topic(settings, Topic.RAW_OBOT_WEBHOOK, want=3)
        assert len(events) == 3
        first, _, rejected = sorted(events, key=lambda e: (e["data"].get("params", {}).get("name") == "create_issue",
                                                             e.get("subject") is None))
        assert first["type"] == "obot.webhook.decision" and first["tenant"] == "acme"
        assert first["source"] == "obot/prod/webhook" and first["subject"] == "user-7"
        assert first["request_id"] == "req-1"
        # The delivery time is recorded for replays (the JSON-RPC body has none): the event's time.
        assert first["data"]["_gateledger"].pop("delivered_at")[:19] == first["time"][:19]
        assert first["data"]["_gateledger"] == {
            "filter": "default", "decision": "accepted", "status": 200, "reason": None, "policy": "block-create-issue",
            "phase": "request", "signature_check": "verified", "mcp_server_id": "ms1abc", "user_id": "user-7",
        }
        assert rejected["data"]["_gateledger"]["decision"] == "rejected"
        assert rejected["data"]["_gateledger"]["details"] == {"budget_id": "b-1"}
        assert len({e["id"] for e in events}) == 3, "every delivery is its own decision"
        letters = await read_topic(settings, Topic.DEAD_LETTERS, want=2)
        assert [d["reason"] for d in letters if d["first_at"] is None] == ["schema"]
        # Deliveries with a wrong signature keep no body: counted, coalesced (docs/ingest.md "Refusals").
        assert [(d["reason"], d["count"], d["original"]) for d in letters if d["first_at"] is not None] == [
            ("bad_signature", 2, "")]

    asyncio.run(main())


class Broken:
    name = "broken"

    async def decide(self, delivery: WebhookDelivery) -> Decision:
        raise RuntimeError("budget store down")


def test_failing_policy_rejects_and_named_filters_and_delivery_ids(settings: Settings) -> None:
    async def main() -> None:
        ingest = IngestSettings(webhook_filters={"globex": {"secret": "gsec", "tenant": "globex"}})
        async with ingest_client(settings, ingest, decision_policy=Broken()) as http:
            body = jsonutil.dumps(samples.webhook_message())
            r = await http.post("/v1/obot/webhook", data=body)  # default filter, no secret set: unsigned ok
            assert r.status == 500 and "decision policy failed" in (await r.json())["reason"]
            r = await http.post("/v1/obot/webhook/globex", data=body, headers={"X-Obot-Signature-256": sign("gsec", body)})
            assert r.status == 500
            r = await http.post("/v1/obot/webhook/globex", data=body)
            assert r.status == 401
            r = await http.post("/v1/obot/webhook/nope", data=body)
            assert r.status == 404
            # A named delivery re-sent keeps its event id.
            for _ in range(2):
                await http.post("/v1/obot/webhook", data=body, headers={"Idempotency-Key": "d-1"})
        events = await read_topic(settings, Topic.RAW_OBOT_WEBHOOK, want=4)
        assert len(events) == 4 and len({e["id"] for e in events}) == 3
        assert {e["tenant"] for e in events} == {"default", "globex"}
        assert all(e["data"]["_gateledger"]["decision"] == "rejected" for e in events)
        assert {e["data"]["_gateledger"]["signature_check"] for e in events} == {"verified", "unsigned"}

    asyncio.run(main())


def test_current_obot_bare_hex_scope_from_the_url_and_responses_never_budget_blocked(settings: Settings) -> None:
    """As obot-platform/mcp-images http-webhook-mcp-converter/server.js calls a filter: Content-Type and a
    bare-hex X-Obot-Signature-256 only; a response delivery carries its request's method
    (obot-platform/obot pkg/api/handlers/mcpgateway/proxy_hooks.go)."""
    from datetime import UTC, datetime

    from gateledger.contracts.envelope import Envelope
    from gateledger.money.settings import MoneySettings
    from stream_processors.normalize.webhook import decision_from_filter
    from tests.producers.budgetstate import (
        OffsetClock,
        publish_snapshots,
        snapshots_of,
        wait_enforcement,
        write_budgets,
    )
    from tests.producers.ingest.test_budget_enforcement import BUDGETS, _spend, _tool_call, serving

    now = datetime.now(UTC)
    book = _spend(now, write_budgets(MoneySettings().budgets_path(settings.core), BUDGETS))
    snaps = snapshots_of(book, now)

    async def post(http: aiohttp.ClientSession, url: str, body: bytes) -> tuple[int, str]:
        headers = {"Content-Type": "application/json", "X-Obot-Signature-256": sign("acme-sec", body, prefix=False)}
        async with http.post(url, data=body, headers=headers) as r:
            return r.status, await r.text()

    async def main() -> None:
        await publish_snapshots(settings, snaps)
        filters = {"acme": {"secret": "acme-sec", "tenant": "acme"}}
        async with serving(settings, OffsetClock(), webhook_filters=filters) as base, aiohttp.ClientSession() as http:
            await wait_enforcement(base, len(snaps))
            url = f"{base}/v1/obot/webhook/acme/server/ms-github/user/alice"
            status, text = await post(http, url, _tool_call())
            assert status == 402 and "acme-github-day" in text, "scope from the URL path: the budget applies"
            answer = jsonutil.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call", "result": {"content": []}})
            assert (await post(http, url, answer))[0] == 200, "a response is never budget-blocked"
            assert (await post(http, f"{base}/v1/obot/webhook/acme/server/ms-slack", _tool_call()))[0] == 200
            assert (await post(http, f"{base}/v1/obot/webhook/acme/team/x", _tool_call()))[0] == 404
        events = await read_topic(settings, Topic.RAW_OBOT_WEBHOOK, want=3)
        phases = sorted((e["data"]["_gateledger"]["phase"], e["data"]["_gateledger"]["decision"]) for e in events)
        assert phases == [("request", "accepted"), ("request", "rejected"), ("response", "accepted")]
        response = next(e for e in events if e["data"]["_gateledger"]["phase"] == "response")
        decision = decision_from_filter(Envelope.model_validate({k: v for k, v in response.items() if k != "_key"}))
        assert decision.phase == "response" and decision.method == "tools/call"
        assert decision.mcp_server_id == "ms-github" and decision.user_id == "alice"

    asyncio.run(main())


def test_json_rpc_error_code_is_optional_and_a_response_is_recognised_by_result_or_error() -> None:
    from gateledger.contracts.wire import JsonRpcMessage

    # nanobot-ai/nanobot pkg/mcp/message.go: `code,omitempty`.
    msg = JsonRpcMessage.model_validate({"jsonrpc": "2.0", "id": 4, "method": "tools/call", "error": {"message": "x"}})
    assert msg.error is not None and msg.error.code is None and msg.is_response()
    assert not JsonRpcMessage.model_validate({"jsonrpc": "2.0", "id": 4, "method": "tools/call"}).is_response()
