"""Ingest refusals on every route with tokens and webhook secrets on (real app, real broker): odd or non-ASCII
credential and identity headers are 401/400 with a reason, never 500."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp.test_utils import TestServer

from gateledger.settings import Settings
from gateledger.topics import Topic
from producers.ingest.server import tap_port_app
from producers.ingest.settings import IngestSettings
from tests import samples
from tests.producers.ingestutil import ingest_client, sign
from tests.producers.kafkaread import read_topic
from tests.producers.test_hostile_inputs import TolerantAxonFlow
from tests.rawhttp import ODD_VALUES, malformed_requests, raw_post, raw_request

TOKEN = "tok-acme"
SECRET = "whsec"


TAP_TOKEN = "tap-tok-acme"  # the AxonFlow tap authenticates its callers by its own tokens


def secured(upstream: str | None = None, **over: object) -> IngestSettings:
    """Ingest with every authentication on."""
    values: dict[str, object] = {"tokens": {TOKEN: "acme"}, "webhook_secret": SECRET,
                                 "webhook_filters": {"acme": {"secret": SECRET, "tenant": "acme"}},
                                 "axonflow_upstream_url": upstream, "axonflow_tokens": {TAP_TOKEN: ["acme"]}}
    return IngestSettings(**(values | over))


def route_bodies() -> dict[str, bytes]:
    """A valid body per route (so only the header is wrong)."""
    return {
        "/api/mcp-audit-logs": orjson.dumps([samples.obot_shim()]),
        "/v1/obot/webhook": orjson.dumps(samples.webhook_message()),
        "/v1/obot/webhook/acme": orjson.dumps(samples.webhook_message()),
        "/v1/cloudevents": orjson.dumps(samples.cloudevent()),
        "/v1/ingest/obot-llm": orjson.dumps([samples.obot_llm()]),
        "/axonflow/api/policy/pre-check": orjson.dumps(samples.precheck()["request"]),
    }


def test_odd_headers_are_refused_with_a_reason_on_every_route(settings: Settings) -> None:
    async def main() -> None:
        upstream = TolerantAxonFlow()
        async with TestServer(upstream.app(), host="127.0.0.1") as up, \
                ingest_client(settings, secured(str(up.make_url("")))) as http:
            base = str(http.make_url("")).rstrip("/")
            for path, body in route_bodies().items():
                good = [(b"Content-Type", b"application/json"), (b"Authorization", f"Bearer {TOKEN}".encode()),
                        (b"X-Obot-Signature-256", sign(SECRET, body).encode()),
                        (b"X-Gateledger-Token", TAP_TOKEN.encode())]
                # The credential this route checks (the tap's own authentication is the tap's business).
                used = b"X-Obot-Signature-256" if "webhook" in path else None if "axonflow" in path else b"Authorization"
                for odd in ODD_VALUES:
                    for name in (b"Authorization", b"X-Obot-Signature-256"):
                        if name != used and odd.isascii():
                            continue  # a visible odd value in a header this route ignores is just ignored
                        headers = [h for h in good if h[0] != name] + [(name, odd)]
                        status, answer = await raw_post(base, path, body, headers)
                        assert status == 401 and answer.get("reason") in (
                            "bad_header", "unauthenticated", "bad_signature"), (path, name, odd, status, answer)
                    for name in (b"X-Gateledger-Tenant", b"X-Tenant-ID", b"Idempotency-Key"):
                        if not odd.isascii():
                            status, answer = await raw_post(base, path, body, [*good, (name, odd)])
                            assert (status, answer.get("reason")) == (400, "bad_header"), (path, name, odd, answer)
                status, answer = await raw_post(base, path, body, good)
                assert status == 200, (path, answer)  # the same request with clean headers is fine

    asyncio.run(main())


def test_records_over_the_record_limit_are_refused_too_large_and_dead_lettered_never_503(settings: Settings) -> None:
    """A body under the 10 MiB body limit may hold a record Kafka can never take (1 MiB): it is refused with
    too_large and dead-lettered (the rest of its batch accepted); one just under the limit lands."""
    big = "x" * 1_500_000  # under the body limit, over the record limit

    async def main() -> None:
        async with ingest_client(settings, secured()) as http:
            auth = {"Authorization": f"Bearer {TOKEN}"}
            batch = [samples.obot_llm(id="big-1", requestBody={"pad": big}), samples.obot_llm(id="small-1")]
            r = await http.post("/v1/ingest/obot-llm", data=orjson.dumps(batch), headers=auth)
            answer = await r.json()
            assert r.status == 400 and answer["accepted"] == 1, answer
            assert [(x["index"], x["reason"]) for x in answer["rejected"]] == [(0, "too_large")]
            near = samples.obot_llm(id="near-1", requestBody={"pad": "y" * 900_000})
            r = await http.post("/v1/ingest/obot-llm", data=orjson.dumps([near]), headers=auth)
            assert r.status == 200, await r.text()  # the producer and the broker take what the limit lets through
            body = orjson.dumps(samples.webhook_message(id="big-w", params={"pad": big}))
            r = await http.post("/v1/obot/webhook", data=body, headers={"X-Obot-Signature-256": sign(SECRET, body)})
            assert (r.status, (await r.json())["reason"]) == (413, "too_large")
            r = await http.post("/v1/cloudevents", data=orjson.dumps(samples.cloudevent(id="big-c", data={"p": big})),
                                headers={**auth, "Content-Type": "application/cloudevents+json"})
            assert r.status in (400, 413) and "too_large" in await r.text()
        letters = await read_topic(settings, Topic.DEAD_LETTERS, until=lambda got: len(got) >= 3)
        assert sorted(d["reason"] for d in letters) == ["too_large"] * 3, letters
        assert all(d["count"] == 1 and d["first_at"] is None for d in letters), "each with its body"
        assert all(len(orjson.dumps(d)) <= 1_000_000 for d in letters)
        events = await read_topic(settings, Topic.RAW_OBOT_LLM, until=lambda got: len(got) >= 2)
        assert sorted(e["data"]["id"] for e in events) == ["near-1", "small-1"]

    asyncio.run(main())


def test_refusals_without_a_trusted_body_are_coalesced_into_few_dead_letters_that_count_them_all(
        settings: Settings) -> None:
    """Strangers' refusals (unknown tokens, bad signatures, odd headers, URLs naming nothing, wrong methods)
    from two addresses: a handful of bodiless letters whose counts add up to every request, written when
    the server stops; a known caller's odd identity header keeps its (masked) body."""
    body = orjson.dumps([samples.obot_llm(id="fzm-coalesce")])
    sent: dict[tuple[str, int, str], int] = {}

    async def send(base: str, path: str, headers: list[tuple[bytes, bytes]], reason: str, status: int,
                   n: int, local: str) -> None:
        for _ in range(n):
            got, answer = await raw_post(base, path, body, headers, local_addr=local)
            assert (got, answer.get("reason")) == (status, reason), (path, got, answer)
        sent[(reason, status, local)] = sent.get((reason, status, local), 0) + n

    async def main() -> list[dict[str, object]]:
        async with ingest_client(settings, secured()) as http:
            base = str(http.make_url("")).rstrip("/")
            ctype = (b"Content-Type", b"application/json")
            for local in ("127.0.0.1", "127.0.0.2"):
                await send(base, "/v1/ingest/obot-llm", [ctype, (b"Authorization", b"Bearer nope")],
                           "unauthenticated", 401, 40, local)
                await send(base, "/v1/obot/webhook", [ctype, (b"X-Obot-Signature-256", b"sha256=00")],
                           "bad_signature", 401, 30, local)
                await send(base, "/v1/ingest/obot-llm", [ctype, (b"X-Tenant-ID", "é".encode())],
                           "bad_header", 400, 5, local)
                await send(base, "/v1/obot/webhook/nosuch", [ctype], "not_found", 404, 5, local)
            await send(base, "/v1/ingest/nosuch", [ctype, (b"Authorization", f"Bearer {TOKEN}".encode())],
                       "not_found", 404, 3, "127.0.0.1")
            r = await http.get("/v1/cloudevents")
            assert (r.status, (await r.json())["reason"]) == (405, "method_not_allowed")
            sent[("method_not_allowed", 405, "127.0.0.1")] = 1
            # A known caller's odd identity header: dead-lettered with its body, as any refusal it causes.
            status, answer = await raw_post(base, "/v1/ingest/obot-llm", body, [
                ctype, (b"Authorization", f"Bearer {TOKEN}".encode()), (b"X-Tenant-ID", "é".encode())])
            assert (status, answer["reason"]) == (400, "bad_header")
        # Written when the server stopped, well before the window closed.
        return await read_topic(settings, Topic.DEAD_LETTERS, until=lambda got: sum(
            d["count"] for d in got) >= sum(sent.values()) + 1)

    letters = asyncio.run(main())
    kept = [d for d in letters if d["first_at"] is None]
    assert [(d["reason"], d["tenant"], d["http_status"], "fzm-coalesce" in d["original"]) for d in kept] == [
        ("bad_header", "acme", 400, True)]
    coalesced = [d for d in letters if d["first_at"] is not None]
    counted: dict[tuple[str, int, str], int] = {}
    for d in coalesced:
        key = (d["reason"], d["http_status"], d["caller"])
        counted[key] = counted.get(key, 0) + d["count"]
        assert d["original"] == "" and d["original_size"] == 0 and d["first_at"] <= d["last_at"], d
        assert "nope" not in orjson.dumps(d).decode() and "x-tenant-id" in d["details"]["header_names"] \
            or d["reason"] != "bad_header", d
    assert counted == sent
    # One letter per caller, route, reason and status: 10 for 279 refusals.
    assert len(coalesced) == 10, [(d["origin"], d["reason"], d["caller"], d["count"]) for d in coalesced]
    assert {d["tenant"] for d in coalesced if d["reason"] == "not_found" and d["origin"] == "http:/v1/ingest/{format}"} \
        == {"acme"}


def test_requests_aiohttp_refuses_before_any_handler_are_counted_in_dead_letters_on_both_tap_ports(
        settings: Settings) -> None:
    """A malformed request line or header is answered 400 by aiohttp's HTTP parser (an unknown Expect 417)
    before any middleware runs: each is still counted, as ``bad_request`` from ``<door>:aiohttp``, in the
    coalesced dead letters of the ingest port and of the tap's own port. Pins the aiohttp hook this takes
    (its access logger, called for the parser's own answers): an aiohttp that stops calling it fails here."""
    sender = "127.0.0.3"

    async def main() -> tuple[dict[tuple[str, str, int], int], list[dict[str, object]]]:
        sent: dict[tuple[str, str, int], int] = {}
        upstream = TolerantAxonFlow()
        async with TestServer(upstream.app(), host="127.0.0.1") as up, \
                ingest_client(settings, secured(str(up.make_url("")))) as http, \
                TestServer(tap_port_app(http.app), host="127.0.0.1") as tap:
            doors = [("http", str(http.make_url("")).rstrip("/"), "/v1/ingest/obot-llm"),
                     ("http", str(http.make_url("")).rstrip("/"), "/axonflow/api/policy/pre-check"),
                     ("tap", str(tap.make_url("")).rstrip("/"), "/api/policy/pre-check")]
            for door, base, path in doors:
                for data in malformed_requests(path):
                    status, answer = await raw_request(base, data, local_addr=sender)
                    assert status in (400, 417) and "reason" not in answer, (door, data[:60], status, answer)
                    key = (f"{door}:aiohttp", "bad_request", status)
                    sent[key] = sent.get(key, 0) + 1
                # The same route still answers a well-formed request from the same address.
                body = orjson.dumps([samples.obot_llm(id=f"fzm-after-{door}-{len(sent)}")])
                if door == "http" and "obot" in path:
                    auth = [(b"Authorization", f"Bearer {TOKEN}".encode())]
                    status, answer = await raw_post(base, path, body, auth, local_addr=sender)
                    assert status == 200, answer
        return sent, await read_topic(settings, Topic.DEAD_LETTERS, until=lambda got: sum(
            d["count"] for d in got if d["caller"] == sender) >= sum(sent.values()))

    sent, letters = asyncio.run(main())
    counted: dict[tuple[str, str, int], int] = {}
    for d in letters:
        assert d["caller"] == sender and d["stage"] == "ingest" and d["original"] == "" and d["first_at"], d
        key = (d["origin"], d["reason"], d["http_status"])
        counted[key] = counted.get(key, 0) + d["count"]
        assert "a\x01b" not in orjson.dumps(d).decode()  # the parser's message quotes the request, masked
    assert counted == sent
    assert len(letters) == len(sent)  # coalesced: one letter per door, reason and status
