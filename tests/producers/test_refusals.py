"""Ingest refusals on every route with tokens and webhook secrets on (real app, real broker): odd or non-ASCII
credential and identity headers are 401/400 with a reason, never 500."""

from __future__ import annotations

import asyncio

import orjson
from aiohttp.test_utils import TestServer

from gateledger.settings import Settings
from producers.ingest.settings import IngestSettings
from tests import samples
from tests.producers.ingestutil import ingest_client, sign
from tests.producers.test_hostile_inputs import TolerantAxonFlow
from tests.rawhttp import ODD_VALUES, raw_post

TOKEN = "tok-acme"
SECRET = "whsec"


def secured(upstream: str | None = None, **over: object) -> IngestSettings:
    """Ingest with every authentication on."""
    return IngestSettings(tokens={TOKEN: "acme"}, webhook_secret=SECRET,
                          webhook_filters={"acme": {"secret": SECRET, "tenant": "acme"}},
                          axonflow_upstream_url=upstream, **over)


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
                        (b"X-Obot-Signature-256", sign(SECRET, body).encode())]
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
