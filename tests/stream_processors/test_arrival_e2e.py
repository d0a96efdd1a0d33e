"""One file per source, in every order of the files, lands what live time-ordered delivery lands.

On the real stack (Tansu broker, a processors worker, the sink, chDB): a scenario with every kind of
finding is delivered live, in event-time order, under one tenant; under 24 more tenants it is
ingested with `gateledger ingest`'s code as four files (AxonFlow pre-checks, AxonFlow audits, Obot
MCP records, webhook-filter recordings), each tenant in another order of the files. Tenants have
their own event time, so they run side by side on one stack. Every tenant's findings and
interactions, read through the analyst views, equal the live tenant's (issue 16).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import re
import time
from datetime import timedelta
from pathlib import Path
from typing import Any

from gateledger_cli.ingest_file import ingest_file
from gateledger.settings import Settings
from sinks.clickhouse.main import run_sink
from tests.conftest import Processes
from tests.stream_processors import traffic
from tests.stream_processors.harness import ensure_topics, envelope, publish, start_worker
from tests.stream_processors.traffic import T0, Spec

FILES = ("axonflow-precheck", "axonflow-llm-call", "obot-audit", "obot-webhook")
KINDS = {"unaudited_llm_call", "orphan_audit", "policy_bypass", "suspect_usage"}


def scenario(tenant: str, base: int) -> list[tuple[Any, str, dict[str, Any], Any]]:
    """(event time, format, record, received at), in event-time order; numbers start at ``base``."""
    def at(s: float) -> Any:
        return T0 + timedelta(seconds=s)

    specs = [
        Spec(n=base + 1, t0=at(0), tools=2),
        Spec(n=base + 2, t0=at(5), tools=1, reject_tool=0, filter_decision="rejected"),  # blocked, nothing ran
        Spec(n=base + 3, t0=at(10), tools=1, reject_tool=0, reject_ran=True, filter_decision="rejected"),  # bypass
        Spec(n=base + 4, t0=at(15), tools=0, blocked=True),  # audited under a blocked context: bypass
        Spec(n=base + 5, t0=at(20), tools=0, audit=False, expires_in_s=1),  # unaudited
        Spec(n=base + 6, t0=at(25), tools=1, zero_tokens=True),  # suspect usage
    ]
    out = []
    for spec in specs:
        spec.tenant = tenant
        out += traffic.records(spec)
    orphan = Spec(n=base + 7, t0=at(30), tenant=tenant)
    out.append((at(30), "axonflow-llm-call", traffic.audit_record(orphan, at(30), context_id=f"orphan-{base}"),
                at(30) + traffic.DELAY))
    out.append((at(32), "obot-audit", traffic.housekeeping_record(tenant, base, at(32)), at(32) + traffic.DELAY))
    for _t, fmt, rec, rcv in out:
        if fmt == "obot-webhook":
            # A recording of the delivery: the filter's verdict and the delivery's time.
            rec["_gateledger"]["delivered_at"] = traffic.utc_iso(rcv)
    out.sort(key=lambda r: r[0])
    return out


def _norm(value: Any) -> str:
    """A value with the tenant's numbering folded away (tenants number their requests from ``base``)."""
    return re.sub(r"\d+", lambda m: str(int(m.group()) % 100), str(value))


def standing(ch: Any, db: str) -> dict[str, tuple[set, set]]:
    """Per tenant: its findings and interactions as the analyst views show them."""
    found: dict[str, tuple[set, set]] = {}
    rows = ch.query(f"SELECT tenant, kind, severity, context_id, request_id, description FROM {db}.findings_latest("
                    "tenant = '', since = '2000-01-01', until = '2100-01-01')").result_rows
    for tenant, *rest in rows:
        found.setdefault(tenant, (set(), set()))[0].add(tuple(_norm(v) for v in rest))
    rows = ch.query(f"SELECT tenant, request_id, context_ids, status, llm_calls, tool_calls, complete "
                    f"FROM {db}.interactions_latest(tenant = '', since = '2000-01-01', "
                    "until = '2100-01-01')").result_rows
    for tenant, *rest in rows:
        found.setdefault(tenant, (set(), set()))[1].add(tuple(_norm(v) for v in rest))
    return found


def test_every_order_of_the_source_files_lands_the_live_findings(settings: Settings, gl_env: dict[str, str],
                                                                 processes: Processes, tmp_path: Path,
                                                                 ch_client: Any) -> None:
    db = settings.clickhouse.database
    asyncio.run(ensure_topics(settings))
    start_worker(processes, gl_env, tmp_path, interaction_timeout_s=5, unaudited_grace_s=0, orphan_grace_s=2,
                 mcp_merge_timeout_s=5, source_idle_s=3)
    orders = list(itertools.permutations(FILES))
    tenants = {"live": None} | {f"order{i:02d}": order for i, order in enumerate(orders)}

    async def main() -> dict[str, tuple[set, set]]:
        stop = asyncio.Event()
        sink = asyncio.create_task(run_sink(settings, stop))
        try:
            live = scenario("live", 0)
            await publish(settings, [envelope(fmt, rec, tenant="live", received_at=rcv,
                                              delivery_id="live" if fmt == "obot-webhook" else None)
                                     for _t, fmt, rec, rcv in live])
            for k, (tenant, order) in enumerate(tenants.items()):
                if order is None:
                    continue
                records = scenario(tenant, 100 * k)
                for fmt in order:
                    path = tmp_path / f"{tenant}-{fmt}.jsonl"
                    path.write_text("".join(json.dumps(rec) + "\n" for _t, f, rec, _r in records if f == fmt))
                    assert await ingest_file(fmt, path, tenant=tenant, install="default") == 0
            seen: dict[str, tuple[set, set]] = {}
            deadline = time.monotonic() + 240
            while time.monotonic() < deadline:
                seen = await asyncio.to_thread(standing, ch_client, db)
                want = seen.get("live")
                if want and {f[0] for f in want[0]} == KINDS and len(want[0]) == 5 and all(
                        seen.get(t) == want for t in tenants):
                    break
                await asyncio.sleep(1)
            return seen
        finally:
            stop.set()
            await sink

    seen = asyncio.run(main())
    live_findings, live_interactions = seen["live"]
    assert {f[0] for f in live_findings} == KINDS and len(live_findings) == 5, live_findings
    # Six user-level interactions and the orphan audit's own; the housekeeping call is none of them.
    assert len(live_interactions) == 7, live_interactions
    for tenant, order in tenants.items():
        assert seen.get(tenant) == seen["live"], (tenant, order, seen.get(tenant))
    # Late evidence was at work: some orders raised findings (or interactions) that were withdrawn.
    withdrawn = ch_client.query(f"SELECT uniqExact(tenant, id) FROM {db}.findings FINAL WHERE retracted").result_rows
    assert withdrawn[0][0] > 0
