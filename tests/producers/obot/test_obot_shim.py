"""The Obot shim endpoint (POST /api/mcp-audit-logs), directly and as a tee in front of a real Obot-like server."""

from __future__ import annotations

import asyncio
import json
from typing import Any

import pytest
from aiohttp import web
from aiohttp.test_utils import TestServer
from pydantic import ValidationError

from gateledger.settings import Settings
from gateledger.topics import Topic
from producers.ingest.settings import IngestSettings
from tests import samples
from tests.producers.ingestutil import ingest_client
from tests.producers.kafkaread import read_topic

TOKENS = {"tok-acme": {"tenant": "acme", "install": "prod"}, "tok-globex": "globex"}


def halves() -> list[dict[str, Any]]:
    """A request half and its response half, as the shim reports them."""
    req = samples.obot_shim()
    for k in ("responseBody", "responseStatus", "processingTimeMs", "responseHeaders"):
        req.pop(k)
    resp = samples.obot_shim(callType="", callIdentifier="", requestBody=None)
    resp.pop("requestBody")
    return [req, resp]


def test_shim_batch_published_with_tenant_halves_keyed_together_and_ignore_flag(settings: Settings) -> None:
    ignored = samples.obot_shim(metadata={"mcpID": "ms9", "obot.mcp.ignoreAuditLog": "true"})

    async def main() -> None:
        async with ingest_client(settings, IngestSettings(tokens=TOKENS)) as http:
            batch = [*halves(), ignored]
            resp = await http.post("/api/mcp-audit-logs", json=batch, headers={"Authorization": "Bearer tok-acme"})
            assert resp.status == 200, await resp.text()
            body = await resp.json()
            assert body == {"accepted": 2, "rejected": [], "ignored": 1}
            # What Obot answers: no token, unknown token.
            r = await http.post("/api/mcp-audit-logs", json=batch)
            assert r.status == 401 and (await r.json())["error"] == "no token provided"
            r = await http.post("/api/mcp-audit-logs", json=batch, headers={"Authorization": "Bearer nope"})
            assert r.status == 401 and (await r.json())["error"] == "invalid token"
        events = await read_topic(settings, Topic.RAW_OBOT_MCP, want=2)
        assert len(events) == 2
        assert {e["tenant"] for e in events} == {"acme"} and {e["source"] for e in events} == {"obot/prod/mcp"}
        assert events[0]["_key"] == events[1]["_key"] == "ms1abc|sess-1|7", "halves meet in one partition"
        assert len({e["id"] for e in events}) == 2
        assert all(e["subject"] == "user-7" for e in events)

    asyncio.run(main())


def test_shim_bad_input_is_400_with_dead_letters_and_valid_records_still_published(settings: Settings) -> None:
    async def main() -> None:
        async with ingest_client(settings) as http:
            r = await http.post("/api/mcp-audit-logs", data=b"[{broken")
            assert r.status == 400 and (await r.json())["reason"] == "invalid_json"
            r = await http.post("/api/mcp-audit-logs", json={"not": "an array"})
            assert r.status == 400 and "expected a JSON array" in (await r.json())["error"]
            r = await http.post("/api/mcp-audit-logs", json=[samples.obot_shim(), samples.obot_shim(createdAt="yesterday"), 7])
            assert r.status == 400
            body = await r.json()
            assert body["accepted"] == 1 and [x["index"] for x in body["rejected"]] == [1, 2]
        letters = await read_topic(settings, Topic.DEAD_LETTERS, want=4)
        assert sorted(d["reason"] for d in letters) == ["invalid_json", "schema", "schema", "schema"]
        assert any(d["original"] == "[{broken" for d in letters), "the raw bytes are kept"
        assert len(await read_topic(settings, Topic.RAW_OBOT_MCP, want=1)) == 1

    asyncio.run(main())


class FakeObot:
    """Obot's POST /api/mcp-audit-logs as its handler behaves (obot-platform/obot v0.23,
    ``pkg/api/handlers/mcpgateway/auditlog.go``, ``SubmitAuditLogs``; routed in
    ``pkg/api/router/router.go``): no authentication middleware, the handler checks the token first
    (``Bearer`` prefix trimmed; empty -> 401 "no token provided"; a token whose digest names no MCP
    server -> 401 "invalid token"), then reads the body (unreadable -> 400 "failed to read input").
    Not modelled: the 403 for a record whose ``mcpID`` is another server's (the tests send only the
    token's own server), and the storage error this fake can be told to answer with (``fail_next``)."""

    def __init__(self, tokens: set[str]) -> None:
        self.tokens = tokens
        self.batches: list[tuple[str, list[Any]]] = []
        self.fail_next = 0

    async def handle(self, request: web.Request) -> web.Response:
        token = request.headers.get("Authorization", "").removeprefix("Bearer ")
        if not token:
            return web.Response(status=401, text="no token provided")
        if token not in self.tokens:
            return web.Response(status=401, text="invalid token")
        try:
            body = json.loads(await request.read())
        except ValueError as exc:
            return web.Response(status=400, text=f"failed to read input: {exc}")
        if self.fail_next and body:
            self.fail_next -= 1
            return web.Response(status=500, text="database is locked")
        self.batches.append((token, body))
        return web.Response(status=200)

    def app(self) -> web.Application:
        app = web.Application()
        app.router.add_post("/api/mcp-audit-logs", self.handle)
        return app


def test_tee_forwards_after_kafka_and_answers_200_only_when_both_succeeded(settings: Settings) -> None:
    obot = FakeObot({"srv-token-1"})

    async def main() -> None:
        async with TestServer(obot.app(), host="127.0.0.1") as upstream:
            ingest = IngestSettings(obot_forward_url=str(upstream.make_url("/api/mcp-audit-logs")), tokens=TOKENS)
            async with ingest_client(settings, ingest) as http:
                batch = halves()
                auth = {"Authorization": "Bearer srv-token-1"}
                # A token only Obot knows: checked with an empty batch, then accepted.
                r = await http.post("/api/mcp-audit-logs", json=batch, headers=auth)
                assert r.status == 200, await r.text()
                assert obot.batches == [("srv-token-1", []), ("srv-token-1", batch)]
                # Obot rejects the token: 401, nothing published, nothing forwarded.
                r = await http.post("/api/mcp-audit-logs", json=batch, headers={"Authorization": "Bearer stolen"})
                assert r.status == 401
                # Obot fails after Kafka acked: its status goes back (the shim retries), then 200.
                obot.fail_next = 1
                again = [samples.obot_shim(processingTimeMs=5)]
                r = await http.post("/api/mcp-audit-logs", json=again, headers=auth)
                assert r.status == 500 and "database is locked" in (await r.json())["error"]
                r = await http.post("/api/mcp-audit-logs", json=again, headers=auth)
                assert r.status == 200
                assert obot.batches[-1] == ("srv-token-1", again) and len(obot.batches) == 3, "token check cached"
        events = await read_topic(settings, Topic.RAW_OBOT_MCP, want=4)
        assert len(events) == 4, "the retried batch was published twice"
        assert len({e["id"] for e in events}) == 3, "...with the same event id, so it counts once downstream"
        assert {e["tenant"] for e in events} == {"default"}, "a token only Obot knows gets the defaults"

    asyncio.run(main())


def test_tee_with_obot_down_is_502_after_the_token_check_fails(settings: Settings) -> None:
    async def main() -> None:
        ingest = IngestSettings(obot_forward_url="http://127.0.0.1:9/api/mcp-audit-logs", tokens=TOKENS)
        async with ingest_client(settings, ingest) as http:
            r = await http.post("/api/mcp-audit-logs", json=halves(), headers={"Authorization": "Bearer unknown"})
            assert r.status == 502 and "Obot unreachable" in (await r.json())["error"]
            # A token gateledger knows is published, then the forward fails: 502, the shim retries.
            r = await http.post("/api/mcp-audit-logs", json=halves(), headers={"Authorization": "Bearer tok-globex"})
            assert r.status == 502
        events = await read_topic(settings, Topic.RAW_OBOT_MCP, want=2)
        assert len(events) == 2 and {e["tenant"] for e in events} == {"globex"}

    asyncio.run(main())


def test_user_precedence_and_api_key_metadata_as_obot_converts_them() -> None:
    """obot-platform/obot pkg/api/handlers/mcpgateway/auditlog.go convertMCPAuditLog: userID, then subject,
    then metadata.userID; metadata api_key_id / api_key_name (pkg/principal/principal.go) -> apiKeyID / apiKeyName."""
    from gateledger.contracts.wire import ObotShimAuditRecord

    def flat(**over: Any) -> Any:
        record = samples.obot_shim(**over)
        two_step = ObotShimAuditRecord.model_validate(record).flattened()
        # The ingest's path validates once (flat_from_wire): the same record, field for field.
        once = ObotShimAuditRecord.flat_from_wire(record)
        assert once.model_dump() == two_step.model_dump() and once.model_extra == two_step.model_extra
        return once

    meta = {"mcpID": "ms1abc", "userID": "meta-user", "api_key_id": "12", "api_key_name": "ci"}
    assert flat(subject="sub-user", metadata=meta).userID == "sub-user", "subject before metadata.userID"
    assert flat(subject="", metadata=meta).userID == "meta-user"
    assert flat(userID="top-user", subject="sub-user", metadata=meta).userID == "top-user"
    rec = flat(metadata=meta)
    assert (rec.apiKeyID, rec.apiKeyName) == ("12", "ci")
    assert flat(metadata={**meta, "api_key_id": "0"}).apiKeyID is None, "only a positive integer counts"
    assert flat(apiKeyID=34, metadata={"mcpID": "ms1abc"}).apiKeyID == "34", "a JSON number is accepted"
    assert flat(metadata=None, subject=None).userID is None
    # A metadata of another type than the shim's: the error names the shim's field, as before.
    with pytest.raises(ValidationError, match="metadata"):
        ObotShimAuditRecord.flat_from_wire(samples.obot_shim(metadata="not-a-map"))


def test_healthz_names_the_obot_versions_the_shim_route_serves(settings: Settings) -> None:
    async def main() -> None:
        async with ingest_client(settings) as http:
            body = await (await http.get("/healthz")).json()
            assert body["obot_shim"]["obot_versions"] == "v0.15-v0.23"

    asyncio.run(main())
