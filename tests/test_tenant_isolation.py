"""Tenants stay apart end to end: ingest (producers/accept.py, the HTTP routes) -> the real broker -> the
processors worker -> the sink -> chDB. Two honest tenants whose Obot installs number their rows alike both
land in full; a hostile tenant's record dated in the year 2999 moves no one's time.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from gateledger.kafka import resolve
from gateledger.masking import Masker
from gateledger.settings import Settings
from producers.accept import RawRecord, accept
from producers.accept import IngestContext
from producers.ingest.server import build_app
from producers.ingest.settings import IngestSettings
from producers.publisher import Publisher
from sinks.clickhouse.main import run_sink
from sinks.clickhouse.settings import SinkSettings
from tests import samples
from tests.conftest import Processes
from tests.sinks.conftest import wait_caught_up
from tests.stream_processors.harness import ensure_topics, start_worker

TENANTS = ("acme", "globex")
ROWS = (1, 2, 3)


def obot_rows() -> list[dict[str, Any]]:
    """Obot rows 1, 2, 3: every tenant's fresh install numbers its rows alike (byte-identical here)."""
    rows = []
    for n in ROWS:
        body = samples.obot_flat()["requestBody"]
        body["id"] = n
        body["params"]["_meta"]["request_id"] = f"req-{n}"
        rows.append(samples.obot_flat(id=n, requestID=str(n), requestBody=body,
                                      responseBody={"jsonrpc": "2.0", "id": n, "result": {"content": []}}))
    return rows


async def ingest(settings: Settings, batches: list[tuple[str, str, list[dict[str, Any]]]]) -> dict[str, list[str]]:
    """(tenant, format, records) through accept() as every ingest path does; tenant -> rejection reasons."""
    target = resolve(settings.kafka, settings.core)
    masker = Masker(salt=b"test-salt")
    reasons: dict[str, list[str]] = {}
    async with Publisher(settings.kafka, target) as pub:
        for tenant, fmt, records in batches:
            ctx = IngestContext(masker=masker, tenant=tenant)  # the same install name for every tenant
            result = await accept(pub, fmt, [RawRecord(i, value=r) for i, r in enumerate(records)], ctx, f"test:{fmt}")
            reasons.setdefault(tenant, []).extend(r.reason for r in result.rejections)
    return reasons


def per_tenant(ch_client: Any, db: str, table: str) -> dict[str, int]:
    rows = ch_client.query(f"SELECT tenant, uniqExact(id) FROM {db}.{table} GROUP BY tenant").result_rows
    return {r[0]: int(r[1]) for r in rows}


def land(settings: Settings, ch_client: Any, want: dict[str, dict[str, int]], timeout_s: float = 90) -> dict:
    """Run the sink until every table holds at least ``want`` (table -> tenant -> ids) and it committed
    everything the processors published by then; what the tables hold."""
    db = settings.clickhouse.database

    async def main() -> dict[str, dict[str, int]]:
        stop = asyncio.Event()
        sink = asyncio.create_task(run_sink(settings, stop))
        seen: dict[str, dict[str, int]] = {}
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline:
                seen = {t: await asyncio.to_thread(per_tenant, ch_client, db, t) for t in want}
                if all(seen[t].get(tenant, 0) >= n for t, w in want.items() for tenant, n in w.items()):
                    break
                await asyncio.sleep(0.5)
            # Rows emitted beside the awaited ones (findings, a split interaction) land too.
            await wait_caught_up(settings, SinkSettings())
            seen = {t: await asyncio.to_thread(per_tenant, ch_client, db, t) for t in want}
        finally:
            stop.set()
            await sink
        return seen

    return asyncio.run(main())


def test_two_tenants_with_colliding_obot_row_ids_both_land(settings: Settings, gl_env: dict[str, str],
                                                           processes: Processes, tmp_path: Path, ch_client) -> None:
    asyncio.run(ensure_topics(settings))
    batches = []
    for tenant in TENANTS:
        batches.append((tenant, "obot-audit", obot_rows()))
        batches.append((tenant, "obot-llm", [samples.obot_llm(id="1")]))
    assert asyncio.run(ingest(settings, batches)) == {t: [] for t in TENANTS}
    start_worker(processes, gl_env, tmp_path, interaction_timeout_s=5, unaudited_grace_s=0)
    each = {t: 1 for t in TENANTS}
    want = {"raw_events": {t: len(ROWS) + 1 for t in TENANTS}, "mcp_calls": {t: len(ROWS) for t in TENANTS},
            "llm_calls": each, "cost_ledger": each}
    seen = land(settings, ch_client, want)
    # Exactly, not at least: nothing of one tenant was dropped as a duplicate of the other's.
    assert seen == want
    db = settings.clickhouse.database
    ids = ch_client.query(f"SELECT tenant, groupUniqArray(id) FROM {db}.raw_events GROUP BY tenant").result_rows
    by_tenant = {r[0]: set(r[1]) for r in ids}
    assert not by_tenant["acme"] & by_tenant["globex"]
    (dead,), = ch_client.query(f"SELECT count() FROM {db}.dead_letters").result_rows
    assert dead == 0


async def post_http(settings: Settings, fmt: str, tenant: str, records: list[dict[str, Any]]) -> dict[str, Any]:
    """POST records to ``/v1/ingest/{fmt}`` of a real ingest app (as ``tenant``); the JSON answer."""
    async with Publisher(settings.kafka, resolve(settings.kafka, settings.core)) as pub:
        app = build_app(pub, IngestSettings(), Masker(salt=b"test-salt"))
        async with TestClient(TestServer(app)) as http:
            resp = await http.post(f"/v1/ingest/{fmt}", json=records, headers={"X-Gateledger-Tenant": tenant})
            answer = await resp.json()
            answer["status"] = resp.status
            return answer


def test_a_tenant_dating_its_records_in_2999_moves_no_one_elses_time(
        settings: Settings, gl_env: dict[str, str], processes: Processes, tmp_path: Path, ch_client) -> None:
    asyncio.run(ensure_topics(settings))
    mallory = samples.precheck(started_at="2999-01-01T00:00:00Z", finished_at="2999-01-01T00:00:01Z",
                               tenant_header="mallory")
    mallory["request"]["context"]["tenant_id"] = "mallory"
    # Mallory's own context id, named like acme's: the same Kafka key, so the same partition and watermark.
    mallory["response"].update(context_id="ctx-1", expires_at="2999-01-01T00:05:00Z")
    # Sent first, over HTTP, as in the issue: before acme's normal traffic reaches the processors.
    answer = asyncio.run(post_http(settings, "axonflow-precheck", "mallory", [mallory]))
    assert answer["status"] == 400 and answer["accepted"] == 0
    assert [r["reason"] for r in answer["rejected"]] == ["future_time"]
    honest = [("acme", "axonflow-precheck", [samples.precheck()]), ("acme", "axonflow-llm-call", [samples.llm_audit()])]
    assert asyncio.run(ingest(settings, honest)) == {"acme": []}
    start_worker(processes, gl_env, tmp_path, interaction_timeout_s=5, unaudited_grace_s=0)
    # The pre-check expires at 10:19:57 on 2026-11-20: with mallory's 2999 in the watermark it would
    # have expired unaudited at once, the audit become an orphan and the interaction split.
    seen = land(settings, ch_client, {"interactions": {"acme": 1}, "llm_calls": {"acme": 1},
                                      "dead_letters": {"mallory": 1}})
    assert seen["interactions"] == {"acme": 1} and seen["llm_calls"] == {"acme": 1}
    db = settings.clickhouse.database
    row = ch_client.query(f"SELECT status, complete, llm_calls, context_ids FROM {db}.interactions FINAL "
                          f"WHERE tenant = 'acme' ORDER BY version DESC LIMIT 1").result_rows
    assert row == [("ok", True, 1, ["ctx-1"])]
    assert ch_client.query(f"SELECT tenant, kind FROM {db}.findings FINAL").result_rows == []
    assert ch_client.query(f"SELECT count() FROM {db}.raw_events WHERE tenant = 'mallory'").result_rows == [(0,)]
    letters = ch_client.query(f"SELECT reason, stage, error FROM {db}.dead_letters WHERE tenant = 'mallory'").result_rows
    assert [(r[0], r[1]) for r in letters] == [("future_time", "ingest")] and "2999-01-01" in letters[0][2]
