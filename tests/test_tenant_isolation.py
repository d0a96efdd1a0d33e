"""Tenants stay apart end to end: ingest (producers/accept.py) -> the real broker -> the processors worker
-> the sink -> chDB. Two honest tenants whose Obot installs number their rows alike both land in full.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from gateledger.kafka import resolve
from gateledger.masking import Masker
from gateledger.settings import Settings
from producers.accept import RawRecord, accept
from producers.formats import IngestContext
from producers.publisher import Publisher
from sinks.clickhouse.main import run_sink
from tests import samples
from tests.conftest import Processes
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
    """Run the sink until every table holds at least ``want`` (table -> tenant -> ids); what it holds."""
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
