"""Throughput of the money stages on one worker: cost (calls -> cost rows) and budgets (cost rows ->
contributions -> accounting -> alerts + state snapshots).

The call topics are filled first with ``LlmCall`` / ``McpCall`` rows as the normalize stage writes
them (5 providers, cache tokens, 10 % unknown models, priced and free tools), then one real
``gateledger serve processors`` worker runs with a budgets file of 6 budgets (each cost row
matches 2-3 of them). The clock runs from "worker ready" until the cost stage consumed every call
and the budget stage every contribution the fan-out produced. Also the pure logic, in-process.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import tempfile
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from benchmarks import worker as worker_on
from gateledger.contracts.events import LlmCall, McpCall, McpCallStatus
from gateledger.topics import Topic, topic_name

T0 = datetime(2026, 11, 2, 8, 0, tzinfo=UTC)
MODELS = [("openai", "gpt-4o"), ("openai", "gpt-5.4"), ("anthropic", "claude-sonnet-4-5-20250929"),
          ("google", "gemini-2.5-pro"), ("bedrock", "us.anthropic.claude-sonnet-4-5-20250929-v1:0"),
          ("mistral", "mistral-medium-2508"), ("acme-ai", "mystery-model-9")]
BUDGETS = """
budgets:
  - {name: acme-day, scope: {tenant: acme}, period: day, timezone: Europe/Berlin, limit_usd: "50"}
  - {name: globex-month, scope: {tenant: globex}, period: month, timezone: America/New_York, limit_usd: "900"}
  - {name: claude-week, scope: {model: "claude-*"}, period: week, limit_usd: "400"}
  - {name: u1-burst, scope: {user: user-1}, period: rolling, hours: 6, limit_usd: "2"}
  - {name: github-tools, scope: {mcp_server: github}, period: day, limit_usd: "1"}
  - {name: all-month, period: month, limit_usd: "5000"}
"""
PRICES = """schema: 1
updated: "2026-11-21"
tools:
  - {server: github, tool: "search_*", prices: [{from: "2026-01-01", per_call: "0.002"}]}
"""


def calls(n: int, seed: int = 1) -> list[LlmCall | McpCall]:
    """``n`` call rows (80 % LLM calls, 20 % MCP tool calls), event times 50 ms apart."""
    rng = random.Random(seed)
    out: list[LlmCall | McpCall] = []
    for i in range(n):
        t = T0 + timedelta(milliseconds=50 * i)
        tenant = ("acme", "globex", "initech")[i % 3]
        user = f"user-{rng.randint(0, 40)}"
        if rng.random() < 0.8:
            provider, model = MODELS[rng.randint(0, 5)] if rng.random() < 0.9 else MODELS[6]
            inp = rng.randint(100, 20_000)
            out.append(LlmCall(id=f"llm-{seed}-{i}", tenant=tenant, time=t, source="bench", user_id=user,
                               client_id="support-bot", provider=provider, model=model, input_tokens=inp,
                               output_tokens=rng.randint(10, 2000), cache_read_tokens=inp // 3 if i % 4 == 0 else 0,
                               request_id=f"req-{seed}-{i}"))
        else:
            tool = rng.choice(["search_issues", "get_file", "search_code"])
            out.append(McpCall(id=f"mcp-{seed}-{i}", tenant=tenant, time=t, source="bench", user_id=user,
                               mcp_server_id="ms-github", mcp_server_name="GitHub", catalog_entry="github",
                               method="tools/call", tool_name=tool, status=McpCallStatus.SUCCESS,
                               request_id=f"req-{seed}-{i}"))
    return out


def bench_logic(n: int = 20_000, runs: int = 3) -> dict[str, Any]:
    """Calls/s of the cost logic and contributions/s of fan-out + accounting, in-process (no Kafka)."""
    from gateledger.clock import ManualClock
    from gateledger.masking import Masker
    from stream_processors.budgets.stage import BudgetPartition, FanoutPartition
    from stream_processors.common.money_files import MoneyFiles
    from stream_processors.cost.stage import LLM, MCP, CostPartition
    from stream_processors.settings import ProcessorSettings

    rows = [(LLM if isinstance(c, LlmCall) else MCP, c.model_dump_json().encode()) for c in calls(n)]
    with tempfile.TemporaryDirectory() as d:
        (Path(d) / "budgets.yaml").write_text(BUDGETS)
        (Path(d) / "prices.yaml").write_text(PRICES)
        files = MoneyFiles(Path(d) / "prices.yaml", None, Path(d) / "budgets.yaml")
        cost_rates, budget_rates = [], []
        contributions = 0
        for _ in range(runs):
            clock = ManualClock(T0)
            cost = CostPartition(0, ProcessorSettings(), files, Masker(salt=b"b"), clock)
            started = time.perf_counter()
            for i, (kind, value) in enumerate(rows):
                cost.process(kind, "t", i, value)
            cost_rates.append(n / (time.perf_counter() - started))
            ledger = [e.value for e in cost.out.emits if e.topic == str(Topic.COST_LEDGER)]
            fan = FanoutPartition(0, files, Masker(salt=b"b"))
            acct = BudgetPartition(0, files, clock, 7 * 86400)
            started = time.perf_counter()
            for i, value in enumerate(ledger):
                fan.process("t", i, value)
            import orjson

            packs = [fan.out.emits[i:i + 500] for i in range(0, len(fan.out.emits), 500)]
            for off, pack in enumerate(packs):
                acct.process(off, orjson.dumps([e.obj for e in pack]))
                acct.out.emits.clear()
                acct.flush()
            contributions = len(fan.out.emits)
            budget_rates.append(contributions / (time.perf_counter() - started))
    return {"benchmark": "money.logic", "calls": n, "runs": runs, "contributions": contributions,
            "cost_calls_per_s_median": round(statistics.median(cost_rates)),
            "budget_contributions_per_s_median": round(statistics.median(budget_rates)),
            "cost_runs": [round(r) for r in cost_rates], "budget_runs": [round(r) for r in budget_rates]}


def _messages(prefix: str, rows: list[LlmCall | McpCall]) -> list[tuple[str, bytes, bytes]]:
    """The call rows as (physical topic, key, value) messages, as the normalize stage writes them."""
    return [(topic_name(Topic.LLM_CALLS if isinstance(r, LlmCall) else Topic.MCP_CALLS, prefix),
             r.id.encode(), r.model_dump_json().encode()) for r in rows]


def _all_accounted(n: int) -> Callable[[str, float, float], tuple[float, float, int] | None]:
    """(seconds until the cost stage consumed every call, seconds until the budgets stage consumed every
    contribution, contributions)."""
    cost_done: float | None = None

    def done(text: str, elapsed: float, _cpu: float) -> tuple[float, float, int] | None:
        nonlocal cost_done
        costed = worker_on.metric(text, "gateledger_processor_events_in_total", stage="cost")
        ledger_out = worker_on.metric(text, "gateledger_processor_events_out_total", stage="cost",
                                      topic="cost.ledger")
        fanned = worker_on.metric(text, "gateledger_processor_events_in_total", stage="budget-fanout")
        contrib = worker_on.metric(text, "gateledger_processor_events_out_total", stage="budget-fanout",
                                   topic="budget-contributions")
        accounted = worker_on.metric(text, "gateledger_processor_events_in_total", stage="budgets")
        if cost_done is None and costed >= n:
            cost_done = elapsed
        if cost_done is not None and fanned >= ledger_out and accounted >= contrib > 0:
            return cost_done, elapsed, int(contrib)
        return None

    return done


def bench_worker(n: int = 20_000, runs: int = 3, timeout_s: float = 600.0) -> dict[str, Any]:
    """Calls/s through the cost stage and contributions/s through the budget stages of one real worker."""
    cost_rates, budget_rates, totals = [], [], []
    contributions = 0
    files = {"budgets.yaml": ("GATELEDGER_BUDGETS_FILE", BUDGETS),
             "prices.yaml": ("GATELEDGER_PRICES_FILE", PRICES)}
    with worker_on.broker() as (bootstrap, _own):
        for run in range(runs):
            tag = f"mbench{os.getpid()}r{run}x{int(time.time())}"
            asyncio.run(worker_on.publish(bootstrap, f"{tag}.", _messages(f"{tag}.", calls(n, seed=run + 1))))
            with worker_on.worker(bootstrap, tag, own_broker=True, files=files) as (port, proc, log):
                cost_s, total_s, contributions = worker_on.measure(port, proc, timeout_s, log,
                                                                   _all_accounted(n))
            cost_rates.append(n / cost_s)
            budget_rates.append(contributions / total_s)
            totals.append(round(total_s, 2))
    return {"benchmark": "money.worker", "calls": n, "runs": runs, "contributions": contributions,
            "cost_calls_per_s_median": round(statistics.median(cost_rates)),
            "budget_contributions_per_s_median": round(statistics.median(budget_rates)),
            "cost_runs": [round(r) for r in cost_rates], "budget_runs": [round(r) for r in budget_rates],
            "seconds_runs": totals, "cpu_count": os.cpu_count()}


def run(calls_n: int = 20_000, runs: int = 3, logic_only: bool = False) -> dict[str, Any]:
    """Both measurements (or only the logic's)."""
    result: dict[str, Any] = {"logic": bench_logic(calls_n, runs)}
    if not logic_only:
        result["worker"] = bench_worker(calls_n, runs)
    return result
