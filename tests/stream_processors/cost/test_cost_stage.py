"""The cost stage in the real worker on the real broker: AxonFlow and Obot LLM calls priced, tool calls
priced per the catalog's ``tools:``, unknown models flagged with a finding, newer call versions re-priced
only when the cost row changes."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

from gateledger.money.cost import cost_row_id
from gateledger.settings import Settings
from gateledger.topics import Topic
from tests import samples
from tests.conftest import Processes
from tests.stream_processors import traffic
from tests.stream_processors.harness import ensure_topics, envelope, publish, start_worker, wait_outputs
from tests.stream_processors.traffic import T0, Spec

PRICES = """
schema: 1
updated: "2026-11-21"
tools:
  - server: github
    tool: "tool_0"
    prices: [{from: "2026-01-01", per_call: "0.002"}]
"""


def test_llm_and_tool_calls_are_priced_in_the_stream(gl_env: dict[str, str], settings: Settings,
                                                     processes: Processes, tmp_path: Path) -> None:
    prices = tmp_path / "prices.yaml"
    prices.write_text(PRICES)
    budgets = tmp_path / "budgets.yaml"
    # Gauges show the period holding the wall clock: a trailing-24 h budget over calls made just now.
    budgets.write_text('budgets:\n  - {name: gauge-24h, scope: {tenant: gauge}, period: rolling, hours: 24, '
                       'limit_usd: "0.02"}\n')
    recent = (datetime.now(UTC) - timedelta(minutes=10)).strftime("%Y-%m-%dT%H:%M:%SZ")
    asyncio.run(ensure_topics(settings))
    joined = Spec(n=1, t0=T0, tools=2, halves=False, prompt_tokens=1200, completion_tokens=300)
    late_pre = Spec(n=2, t0=T0 + timedelta(seconds=10), tools=0, prompt_tokens=2000, completion_tokens=100)
    evs = traffic.events_in_time_order([joined])
    # The audit of spec 2 arrives before its pre-check: emitted at once (v1, no user), then enriched (v2).
    evs += [traffic.audit(late_pre, late_pre.t0 + timedelta(seconds=1)), traffic.precheck(late_pre, late_pre.t0)]
    obot_known = envelope("obot-llm", samples.obot_llm(id="llm-known", requestID="req-obot-1"))
    obot_unknown = envelope("obot-llm", samples.obot_llm(id="llm-unknown", modelID="mystery-model-9",
                                                         targetModel=None, modelProvider="acme-ai",
                                                         requestID="req-obot-2"))
    evs += [obot_known, obot_unknown, obot_known]  # a producer retry of the first one
    evs += [envelope("obot-llm", samples.obot_llm(id=f"llm-now-{i}", requestID=f"req-now-{i}", createdAt=recent),
                     tenant="gauge") for i in range(2)]
    asyncio.run(publish(settings, evs))
    worker = start_worker(processes, gl_env | {"GATELEDGER_PRICES_FILE": str(prices),
                                               "GATELEDGER_BUDGETS_FILE": str(budgets)}, tmp_path)

    def done(out) -> bool:  # noqa: ANN001
        return len(out.final(Topic.COST_LEDGER)) >= 7 and any(
            r["version"] >= 2 << 16 for r in out.final(Topic.COST_LEDGER).values())

    out = asyncio.run(wait_outputs(settings, done))
    costs = {k: r for k, r in out.final(Topic.COST_LEDGER).items() if r["tenant"] != "gauge"}
    llm = {r["id"]: r for r in out.final(Topic.LLM_CALLS).values()}
    by_event = {r["event_id"]: r for r in costs.values()}
    # AxonFlow audit joined to its pre-check: 1200 x 2.50 + 300 x 10 per million = 0.006
    ax = next(r for r in by_event.values() if r["kind"] == "llm" and r["input_tokens"] == 1200
              and r["client_id"] == "support-bot" and r["user_id"] == "user-1")
    assert Decimal(ax["total_cost_usd"]) == Decimal("0.006")
    assert ax["price_version"] and not ax["unpriced"] and ax["interaction_id"]
    assert ax["id"] == cost_row_id("llm", ax["event_id"]) and ax["version"] == llm[ax["event_id"]]["version"] << 16
    # Obot gateway log, same usage, the answering snapshot priced as gpt-4o
    known = next(r for r in by_event.values() if r["model"] and r["user_id"] == "user-7" and not r["unpriced"])
    assert Decimal(known["total_cost_usd"]) == Decimal("0.006") and known["provider"] == "openai"
    # Unknown model: a flagged row at zero and a finding naming the call; never a silent zero
    unk = next(r for r in by_event.values() if r["unpriced"])
    assert unk["unpriced_reason"] == "unknown_model" and Decimal(unk["total_cost_usd"]) == 0
    findings = [f for f in out.final(Topic.FINDINGS).values() if f["kind"] == "unpriced_model"]
    # The budget gauges of the running worker: 2 x 0.006 of 0.02 in the trailing 24 h (float: display only).
    deadline = time.monotonic() + 20
    want = ('gateledger_budget_spend_usd{budget_id="gauge-24h",budget_name="gauge-24h"} 0.012',
            'gateledger_budget_utilization_ratio{budget_id="gauge-24h",budget_name="gauge-24h"} 0.6',
            'gateledger_budget_limit_usd{budget_id="gauge-24h",budget_name="gauge-24h"} 0.02')
    while not all(w in worker.metrics() for w in want) and time.monotonic() < deadline:
        time.sleep(0.3)
    metrics = worker.metrics()
    assert all(w in metrics for w in want), [line for line in metrics.splitlines() if line.startswith("gateledger_budget_")]
    # 60 % crosses 50 %: in the block holding the calls and in the next one, whose first windows reach back
    # over them (rolling alerts are per block, see money.md section 4).
    fired = [float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines()
             if line.startswith('gateledger_budget_alerts_total{budget_id="gauge-24h",kind="threshold"}')]
    assert fired and fired[0] >= 1
    assert [f["evidence_event_ids"] for f in findings] == [[unk["event_id"]]]
    # The audit that beat its pre-check: v1 (no user) then v2 (user known) -> two cost row versions
    late_rows = [r for r in out.all(Topic.COST_LEDGER) if r["input_tokens"] == 2000]
    assert sorted(r["version"] for r in late_rows) == [1 << 16, 2 << 16]
    assert {r["user_id"] for r in late_rows} == {None, "user-2"}
    assert len({r["id"] for r in late_rows}) == 1
    # Tools: tool_0 priced at 0.002 per successful call, tool_1 has no price -> no cost row
    tools = [r for r in costs.values() if r["kind"] == "tool"]
    assert [(r["tool_name"], Decimal(r["total_cost_usd"])) for r in tools] == [("tool_0", Decimal("0.002"))]
    assert tools[0]["mcp_server_id"] == "ms-github" and tools[0]["interaction_id"] == ax["interaction_id"]
    # The retried Obot record was deduplicated upstream; every cost row id appears once per version
    pairs = [(r["id"], r["version"]) for r in out.all(Topic.COST_LEDGER)]
    assert len(pairs) == len(set(pairs))
