"""Processor outputs land in their ClickHouse tables through the real sink and the real chDB engine."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

from gateledger.settings import Settings
from sinks.clickhouse.main import run_sink
from sinks.clickhouse.settings import SinkSettings
from tests.conftest import Processes
from tests.stream_processors import traffic
from tests.sinks.conftest import wait_caught_up
from tests.stream_processors.harness import ensure_topics, publish, start_worker
from tests.stream_processors.budgets.test_budget_stage import _lag
from tests.stream_processors.traffic import T0, Spec


def test_outputs_land_in_every_table_without_dead_letters(settings: Settings, gl_env: dict[str, str],
                                                          processes: Processes, tmp_path: Path, ch_client) -> None:
    db = settings.clickhouse.database
    asyncio.run(ensure_topics(settings))
    specs = traffic.mixed(30, seed=4) + [
        Spec(n=100, t0=T0, tools=2, reject_tool=1, filter_decision="rejected"),
        Spec(n=101, t0=T0, tools=1, blocked=True),
        Spec(n=102, t0=T0, tools=0, audit=False, expires_in_s=1),
        Spec(n=103, t0=T0, tools=0, zero_tokens=True),
    ]
    asyncio.run(publish(settings, traffic.events_in_time_order(specs)))
    # Exact counts from the input: one MCP call per tool call (halves merge), one LLM call per audit,
    # one webhook decision per webhookStatuses entry (one per tool call) plus one per filter record.
    tool_calls = sum(s.tools for s in specs)
    audits = sum(1 for s in specs if s.audit)
    webhook_decisions = tool_calls + sum(1 for s in specs if s.filter_decision)
    start_worker(processes, gl_env, tmp_path, interaction_timeout_s=5, unaudited_grace_s=0)

    async def main() -> dict[str, int]:
        stop = asyncio.Event()
        sink = asyncio.create_task(run_sink(settings, stop))
        # Every table lands on its own schedule (one batch per partition): wait for each of them.
        want = {"interactions": len(specs), "findings": 3, "policy_decisions": len(specs), "mcp_calls": tool_calls,
                "llm_calls": audits, "webhook_decisions": webhook_decisions}
        counts: dict[str, int] = {}
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            counts = {t: (await asyncio.to_thread(
                ch_client.query, f"SELECT uniqExact(id) FROM {db}.{t}")).result_rows[0][0]
                      for t in ("interactions", "findings", "mcp_calls", "llm_calls", "policy_decisions",
                                "webhook_decisions", "dead_letters")}
            if all(counts[t] >= n for t, n in want.items()):
                break
            await asyncio.sleep(0.5)
        # Nothing more may come (a late dead letter, a second version): the worker's inputs and then
        # everything it published consumed and committed, by the worker and then by the sink.
        while (lag := await _lag(settings, gl_env["GATELEDGER_PROCESSORS_APP_ID"])) > 0:
            assert time.monotonic() < deadline + 60, f"the worker never caught up (lag {lag})"
            await asyncio.sleep(0.3)
        await wait_caught_up(settings, SinkSettings(), timeout_s=60)
        counts = {t: (await asyncio.to_thread(
            ch_client.query, f"SELECT uniqExact(id) FROM {db}.{t}")).result_rows[0][0] for t in counts}
        stop.set()
        await sink
        return counts

    counts = asyncio.run(main())
    assert counts["interactions"] == len(specs), counts
    assert counts["policy_decisions"] == len(specs)
    assert (counts["mcp_calls"], counts["llm_calls"], counts["webhook_decisions"]) == (
        tool_calls, audits, webhook_decisions), counts
    assert counts["dead_letters"] == 0, ch_client.query(f"SELECT reason, error FROM {db}.dead_letters").result_rows
    kinds = {r[0] for r in ch_client.query(f"SELECT kind FROM {db}.findings FINAL WHERE NOT retracted").result_rows}
    assert {"policy_bypass", "unaudited_llm_call", "suspect_usage"} <= kinds
    row = ch_client.query(
        f"SELECT status, llm_calls, tool_calls, webhook_rejections, total_tokens, complete, cost_usd "
        f"FROM {db}.interactions FINAL WHERE request_id = 'req-100' ORDER BY version DESC LIMIT 1").result_rows[0]
    assert row == ("ok", 1, 2, 1, 1200, True, None)
    # The analyst's view of an interaction: the highest version per id, whatever was re-emitted.
    top = ch_client.query(
        f"SELECT count(), uniqExact(id) FROM (SELECT id, argMax(version, version) v FROM {db}.interactions "
        f"GROUP BY id)").result_rows[0]
    assert top[0] == top[1] == len(specs)
    # And the analysts' views give one row per id in every table: FINAL alone for the tables whose
    # versions keep their time, FINAL plus the newest version per id for interactions (a late earlier
    # event moves an interaction's time), so nobody counts an event twice.
    for t in ("interactions", "findings", "mcp_calls", "llm_calls", "policy_decisions", "webhook_decisions"):
        rows, ids = ch_client.query(
            f"SELECT count(), uniqExact(id) FROM {db}.{t}_latest(tenant = '', since = '2000-01-01', "
            f"until = '2100-01-01')").result_rows[0]
        assert rows == ids, (t, rows, ids)
        if t != "interactions":
            rows, ids = ch_client.query(f"SELECT count(), uniqExact(id) FROM {db}.{t} FINAL").result_rows[0]
            assert rows == ids, (t, rows, ids)
