"""Secrets never land: bearer tokens, API keys, client secrets, passwords, cookies and emails planted in
every upstream format, published exactly as ingest does (producers/accept.py),
run through the real processors worker and landed by the sink, and then every String / Array / Map
column of every table is searched for them. Every table the pipeline writes holds rows first (the
processors' outputs included; a budget with a tiny limit makes the budget tables fill too), so the
scan searches data, not empty tables.
"""

from __future__ import annotations

import asyncio
import secrets
import time
from pathlib import Path
from typing import Any

import pytest

from gateledger.kafka import resolve
from gateledger.masking import Masker
from gateledger.net import free_port
from gateledger.settings import Settings
from gateledger.topics import Topic
from producers.accept import RawRecord, accept, parse_body
from producers.accept import IngestContext
from producers.publisher import Publisher
from sinks.clickhouse.settings import SinkSettings
from tests import samples
from tests.conftest import Processes
from tests.sinks.conftest import publish, running_sink, wait_caught_up
from tests.stream_processors.harness import Worker, worker_env


def _s(n: int = 24) -> str:
    return secrets.token_hex(n)[:n]


# The unique core of each planted secret: none of these may appear anywhere in ClickHouse.
SECRETS = {
    "bearer": "sk-proj-" + _s(40),
    "anthropic_key": "sk-ant-api03-" + _s(40),
    "aws_key_id": "AKIA" + _s(16).upper(),
    "github_token": "ghp_" + _s(36),
    "slack_token": "xoxb-" + _s(30),
    "google_key": "AIza" + _s(35),
    "client_secret": "cs-" + _s(32),
    "password": "pw-" + _s(20),
    "cookie": "sess-" + _s(32),
    "user_token": "utok-" + _s(30),
    "jwt": "eyJhbGciOiJIUzI1NiJ9." + _s(30) + "." + _s(20),
    "refresh_token": "rt-" + _s(30),
    "email": f"alice.{_s(8)}@example.com",
    "email2": f"bob.{_s(8)}@corp.example.org",
}
# Planted next to the secrets and NOT secret: proves the scan sees the data it searches.
CANARY = "canary-" + _s(12)


def _free_text() -> str:
    return (f"{CANARY} contact {SECRETS['email']} with Authorization: Bearer {SECRETS['bearer']} "
            f"key={SECRETS['anthropic_key']} aws {SECRETS['aws_key_id']} gh {SECRETS['github_token']} "
            f"{SECRETS['slack_token']} {SECRETS['google_key']} token {SECRETS['jwt']} "
            f"https://svc:{SECRETS['password']}@db.internal/x?client_secret={SECRETS['client_secret']}")


def _headers() -> dict[str, str]:
    return {"Authorization": f"Bearer {SECRETS['bearer']}", "Cookie": f"session={SECRETS['cookie']}",
            "X-Api-Key": SECRETS["anthropic_key"], "X-Client-Secret": SECRETS["client_secret"],
            "X-Request-Note": CANARY}


def planted_records() -> dict[str, list[dict[str, Any]]]:
    """Records of every format with secrets in headers, bodies, arguments, metadata and free text."""
    args = {"q": _free_text(), "client_secret": SECRETS["client_secret"], "password": SECRETS["password"],
            "refresh_token": SECRETS["refresh_token"], "notify": SECRETS["email2"], "note": CANARY}
    mcp_body = {"jsonrpc": "2.0", "id": 9, "method": "tools/call",
                "params": {"name": "search_issues", "arguments": args, "_meta": {"request_id": "req-s"}}}
    flat = samples.obot_flat(id=777, requestBody=mcp_body, requestHeaders=_headers(),
                             responseBody={"jsonrpc": "2.0", "id": 9, "result": {"content": [
                                 {"type": "text", "text": _free_text()}]}},
                             error=f"upstream said {SECRETS['jwt']}", someFutureField={"apiKey": SECRETS["google_key"]})
    shim = samples.obot_shim(requestID="77", requestBody=mcp_body, requestHeaders=_headers())
    event = samples.obot_audit_event(id="778")
    event["details"]["request"] = {"headers": _headers(), "body": mcp_body}
    event["outcome"]["error"] = _free_text()
    local = samples.obot_local_agent_event()  # Obot v0.24+: a local agent's tool call, its own table
    local["outcome"]["error"] = _free_text()
    llm = samples.obot_llm(id="llm-s1", requestHeaders=_headers(),
                           requestBody={"model": "gpt-4o", "messages": [{"role": "user", "content": _free_text()}],
                                        "api_key": SECRETS["anthropic_key"]},
                           responseBody={"choices": [{"message": {"content": _free_text()}}]})
    webhook = samples.webhook_message(id=91, params={"name": "send_mail", "arguments": args})
    pre = samples.precheck()
    pre["request"].update(user_token=SECRETS["user_token"], query=_free_text(),
                          context={"request_id": "req-s", "tenant_id": "acme", "client_secret": SECRETS["client_secret"],
                                   "note": CANARY})
    pre["response"]["context_id"] = "ctx-s"
    audit = samples.llm_audit()
    audit["request"].update(context_id="ctx-s", response_summary=_free_text(),
                            metadata={"Authorization": f"Bearer {SECRETS['bearer']}", "note": CANARY})
    ce = samples.cloudevent(id="evt-s", data={"prompt": _free_text(), "headers": _headers(),
                                              "user": {"email": SECRETS["email"]}})
    return {
        "obot-audit": [flat, shim],
        "obot-audit-event": [event, local],
        "obot-llm": [llm],
        "obot-webhook": [webhook],
        "axonflow-precheck": [pre],
        "axonflow-llm-call": [audit],
        "cloudevents": [ce],
    }


def invalid_records() -> dict[str, list[bytes]]:
    """Records that fail validation (dead-lettered at ingest) still carrying secrets."""
    return {
        "obot-llm": [(f'{{"id": "x", "createdAt": "yesterday", "note": "{_free_text()}", '
                      f'"requestHeaders": {{"Authorization": "Bearer {SECRETS["bearer"]}"}}}}').encode()],
        "axonflow-precheck": [f'{{"request": {{"user_token": "{SECRETS["user_token"]}"}}, "oops": '.encode()],
    }


async def ingest(settings: Settings) -> int:
    """Publish the planted records exactly as the ingest service would; returns the number accepted."""
    target = resolve(settings.kafka, settings.core)
    masker = Masker(salt=b"test-salt")
    accepted = 0
    async with Publisher(settings.kafka, target) as pub:
        for fmt, records in planted_records().items():
            ctx = IngestContext(masker=masker, tenant="acme", install="secrets", delivery_id=None)
            result = await accept(pub, fmt, [RawRecord(i, value=r) for i, r in enumerate(records)], ctx, f"/v1/ingest/{fmt}")
            assert not result.rejections, (fmt, result.rejections)
            accepted += result.accepted
        for fmt, raws in invalid_records().items():
            ctx = IngestContext(masker=masker, tenant="acme", install="secrets")
            result = await accept(pub, fmt, parse_body(raws[0]), ctx, f"/v1/ingest/{fmt}")
            assert result.rejections, fmt
    # And garbage with secrets that reaches a raw topic some other way: the sink dead-letters it, masked.
    await publish(settings, [(Topic.RAW_OBOT_MCP, "junk", f"not json {_free_text()}".encode())])
    return accepted


async def land(settings: Settings, sink: SinkSettings) -> None:
    """Everything published so far lands in ClickHouse (the sink alone)."""
    async with running_sink(settings, sink):
        await wait_caught_up(settings, sink)


# Tables the processors fill from the planted records (and the sink's rollups from them).
PROCESSOR_TABLES = ("mcp_calls", "llm_calls", "policy_decisions", "webhook_decisions", "interactions",
                    "cost_ledger", "budget_alerts")
TINY_BUDGET = 'budgets:\n  - name: acme-tiny\n    scope: {tenant: acme}\n    period: month\n    limit_usd: "0.000001"\n'


def row_counts(client: Any, db: str) -> dict[str, int]:
    """Rows per MergeTree table of the database."""
    rows = client.query("SELECT name, total_rows FROM system.tables WHERE database = {db:String}"
                        " AND engine LIKE '%MergeTree%'", parameters={"db": db}).result_rows
    return {r[0]: int(r[1] or 0) for r in rows}


async def land_through_pipeline(settings: Settings, sink: SinkSettings, client: Any, worker: Worker) -> dict[str, int]:
    """The processors' outputs and everything else land; returns the rows per table once every
    processor table holds rows and the sink has committed all it consumes."""
    db = settings.clickhouse.database
    async with running_sink(settings, sink):
        deadline = time.monotonic() + 120
        while True:
            counts = await asyncio.to_thread(row_counts, client, db)
            if all(counts.get(t) for t in PROCESSOR_TABLES) and all(counts.values()):
                break
            assert time.monotonic() < deadline, f"empty after 120 s: {counts}; log:\n{worker.tail()}"
            await asyncio.sleep(0.5)
        await wait_caught_up(settings, sink)
    return await asyncio.to_thread(row_counts, client, db)


def text_columns(client: Any, db: str) -> list[tuple[str, str, str]]:
    """(table, column, type) of every column that can hold text, in every table of the database."""
    rows = client.query(
        "SELECT c.table, c.name, c.type FROM system.columns AS c"
        " INNER JOIN system.tables AS t ON t.database = c.database AND t.name = c.table"
        " WHERE c.database = {db:String} AND t.engine LIKE '%MergeTree%'"
        " AND (c.type LIKE '%String%' OR c.type LIKE 'Map(%' OR c.type LIKE 'Array(%' OR c.type LIKE '%JSON%')",
        parameters={"db": db},
    ).result_rows
    return [(r[0], r[1], r[2]) for r in rows]


def scan(client: Any, db: str, needles: list[str]) -> dict[tuple[str, str], int]:
    """(table, column) -> rows whose text contains any needle (case-insensitive)."""
    hits: dict[tuple[str, str], int] = {}
    for table, column, _ in text_columns(client, db):
        (n,), = client.query(
            f"SELECT countIf(multiSearchAnyCaseInsensitiveUTF8(toString(`{column}`), {{needles:Array(String)}}))"
            f" FROM `{db}`.`{table}`",
            parameters={"needles": needles},
        ).result_rows
        if n:
            hits[(table, column)] = int(n)
    return hits


def test_no_planted_secret_reaches_any_table(
    settings: Settings, ch_client, processes: Processes, gl_env: dict[str, str], tmp_path: Path
) -> None:
    db = settings.clickhouse.database
    sink = SinkSettings(batch_max_wait_ms=200)
    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(TINY_BUDGET)
    accepted = asyncio.run(ingest(settings))
    worker = Worker(processes, worker_env(gl_env, interaction_timeout_s=2) | {"GATELEDGER_BUDGETS_FILE": str(budgets)},
                    tmp_path / "proc.log", free_port()).start()
    worker.wait_ready()
    counts = asyncio.run(land_through_pipeline(settings, sink, ch_client, worker))
    worker.kill()
    assert accepted == 9  # one record per planted sample (two Obot flat, one local agent, ...)
    # What the scan below covers: every table of the database holds rows, the processors' included.
    assert counts and all(counts.values()), counts
    (raw,), = ch_client.query(f"SELECT uniqExact(id) FROM {db}.raw_events").result_rows
    assert raw == accepted
    dead = sorted(ch_client.query(f"SELECT stage, reason FROM {db}.dead_letters").result_rows)
    # two refused at ingest; the junk on a raw topic refused by the sink and by normalize
    assert dead == [("ingest", "invalid_json"), ("ingest", "schema"), ("normalize", "invalid_json"),
                    ("sink", "invalid_json")], dead
    columns = text_columns(ch_client, db)
    assert {("raw_events", "data"), ("dead_letters", "original"), ("dead_letters", "error")} <= {
        (t, c) for t, c, _ in columns}
    # The scan finds what is there...
    assert scan(ch_client, db, [CANARY]), "the canary planted beside the secrets is visible"
    # ...and none of the secrets is.
    leaks = {name: scan(ch_client, db, [value]) for name, value in SECRETS.items()}
    assert {k: v for k, v in leaks.items() if v} == {}


def test_an_email_as_cloudevent_subject_is_masked(settings: Settings, ch_client) -> None:
    db = settings.clickhouse.database
    email = f"carol.{_s(8)}@example.com"
    sink = SinkSettings(batch_max_wait_ms=200)

    async def main() -> None:
        target = resolve(settings.kafka, settings.core)
        async with Publisher(settings.kafka, target) as pub:
            ctx = IngestContext(masker=Masker(salt=b"test-salt"), tenant="acme")
            record = samples.cloudevent(id="evt-subject", subject=email)
            assert (await accept(pub, "cloudevents", [RawRecord(0, value=record)], ctx, "/v1/ingest/cloudevents")).accepted
        await land(settings, sink)

    asyncio.run(main())
    (n,), = ch_client.query(f"SELECT count() FROM {db}.raw_events").result_rows
    assert n == 1
    assert scan(ch_client, db, [email]) == {}
