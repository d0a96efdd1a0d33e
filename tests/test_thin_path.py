"""The thin end-to-end path on the real broker and real chDB: HTTP ingest -> raw topics -> sink -> tables."""

from __future__ import annotations

import asyncio
import time

from aiohttp.test_utils import TestClient, TestServer

from gateledger.kafka import ensure_gateledger_topics, resolve
from gateledger.masking import Masker
from gateledger.settings import Settings
from producers.ingest.server import build_app
from producers.ingest.settings import IngestSettings
from producers.publisher import Publisher
from sinks.clickhouse.main import run_sink
from tests import samples

# The flat record and the AuditLogEvent describe the same Obot row (id 1042): one event.
DISTINCT = len(samples.ALL_FORMATS) - 1


def wait_rows(client, sql: str, want: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    n = -1
    while time.monotonic() < deadline:
        n = client.query(sql).result_rows[0][0]
        if n >= want:
            return n
        time.sleep(0.2)
    return n


def test_every_format_lands_in_raw_events_and_bad_input_in_dead_letters(settings: Settings, ch_client) -> None:
    db = settings.clickhouse.database

    async def main() -> None:
        target = resolve(settings.kafka, settings.core)
        await ensure_gateledger_topics(settings.kafka, target)
        stop = asyncio.Event()
        sink = asyncio.create_task(run_sink(settings, stop))
        async with Publisher(settings.kafka, target) as pub:
            app = build_app(pub, IngestSettings(), Masker(salt=b"test-salt"))
            async with TestClient(TestServer(app)) as http:
                for fmt, build in samples.ALL_FORMATS.items():
                    resp = await http.post(f"/v1/ingest/{fmt}", json=[build(), build()])  # a duplicate too
                    assert resp.status == 200, await resp.text()
                    assert (await resp.json())["accepted"] == 2
                bad = await http.post("/v1/ingest/obot-llm", data=b'{"id": "x", "createdAt": "yesterday"}')
                assert bad.status == 400
                assert (await bad.json())["rejected"][0]["reason"] == "schema"
                broken = await http.post("/v1/ingest/obot-audit", data=b"[{not json")
                assert broken.status == 400
                assert (await broken.json())["rejected"][0]["reason"] == "invalid_json"
                assert (await http.post("/v1/ingest/nope", data=b"[]")).status == 404
        n = await asyncio.to_thread(wait_rows, ch_client, f"SELECT uniqExact(id) FROM {db}.raw_events", DISTINCT)
        # The two bad bodies, and the URL naming no format (counted, bodiless: docs/ingest.md "Refusals").
        dl = await asyncio.to_thread(wait_rows, ch_client, f"SELECT count() FROM {db}.dead_letters", 3)
        stop.set()
        await sink
        assert n == DISTINCT, "each record once, whatever was sent twice"
        assert dl == 3

    asyncio.run(main())
    rows = ch_client.query(f"SELECT type, request_id FROM {db}.raw_events FINAL").result_rows
    assert len(rows) == DISTINCT
    assert {r[0] for r in rows} - {"obot.mcp.call", "obot.mcp.audit_event"} == {
        "obot.llm.call", "obot.webhook.decision", "axonflow.precheck", "axonflow.llm_audit", "gateledger.llm.call",
        "axonflow.mcp_check", "axonflow.audit_entry", "obot.local_agent.tool_call",
    }
    # AxonFlow's audits, MCP checks and audit-trail rows carry no request id (they join by context or
    # trace), nor does a local agent's tool call (no JSON-RPC).
    no_request_id = {"axonflow.llm_audit", "axonflow.mcp_check", "axonflow.audit_entry", "obot.local_agent.tool_call"}
    assert all(r[1] == "req-1" for r in rows if r[0] not in no_request_id)
    reasons = {r[0] for r in ch_client.query(f"SELECT reason FROM {db}.dead_letters").result_rows}
    assert reasons == {"schema", "invalid_json", "not_found"}
    # no secret from any sample reached a table
    dump = ch_client.query(f"SELECT data FROM {db}.raw_events").result_rows
    text = " ".join(r[0] for r in dump)
    assert "sk-proj-" not in text and "utok-secret-value-123" not in text and "a.b@example.com" not in text
