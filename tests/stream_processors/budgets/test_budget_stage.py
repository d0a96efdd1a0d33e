"""Budgets in the real worker on the real broker: each threshold of each period fires exactly once,
with every raw event sent twice and the worker SIGKILLed mid-stream; a late event fires its old
period's alert marked late; everything lands in ClickHouse through the real sink."""

from __future__ import annotations

import asyncio
import time
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from gateledger.kafka import consumer_group_lag, resolve
from gateledger.settings import Settings
from gateledger.topics import RAW_TOPICS, Topic, topic_name
from producers.accept import Published
from sinks.clickhouse.main import run_sink
from tests import samples
from tests.conftest import Processes
from tests.stream_processors.harness import (
    OUT_TOPICS, Worker, ensure_topics, envelope, publish, read_outputs, wait_outputs, worker_env,
)

D1 = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)
D2 = datetime(2026, 11, 21, 0, 30, tzinfo=UTC)
BUDGETS = """
budgets:
  - name: acme-daily
    scope: {tenant: acme}
    period: day
    timezone: UTC
    limit_usd: "0.6"
    projection: false
"""
MONEY_TOPICS = (*OUT_TOPICS, Topic.BUDGET_STATE)


def llm_calls(tag: str, start: datetime, n: int) -> list[Published]:
    """``n`` Obot LLM gateway records of gpt-4o, 1200 in / 300 out = $0.006 each, one second apart."""
    return [envelope("obot-llm", samples.obot_llm(
        id=f"llm-{tag}-{i}", requestID=f"req-{tag}-{i}",
        createdAt=(start + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"))) for i in range(n)]


def twice(items: list[Published]) -> list[Published]:
    """Every record sent twice (a producer retry)."""
    return [x for item in items for x in (item, item)]


def _metric(text: str, name: str, label: str) -> float:
    return sum(float(line.rsplit(" ", 1)[1]) for line in text.splitlines()
               if line.startswith(name + "{") and label in line)


async def _lag(settings: Settings, group: str) -> int:
    target = resolve(settings.kafka, settings.core)
    p = target.topic_prefix
    names = [topic_name(t, p) for t in (*RAW_TOPICS, Topic.LLM_CALLS, Topic.MCP_CALLS, Topic.COST_LEDGER)]
    names.append(f"{p}{group}-budget-contributions")
    return sum(x.lag for x in await consumer_group_lag(settings.kafka, target.bootstrap, group, names))


def alert_keys(out: Any) -> list[tuple[str, int, bool]]:
    return sorted((a["period_key"], a["threshold_pct"], a["late"]) for a in out.final(Topic.BUDGET_ALERTS).values())


@pytest.mark.fault
@pytest.mark.slow
def test_thresholds_fire_once_despite_duplicates_and_sigkill_and_late_events_fire_late(
        gl_env: dict[str, str], settings: Settings, processes: Processes, tmp_path: Path, ch_client: Any) -> None:
    from gateledger.net import free_port

    budgets = tmp_path / "budgets.yaml"
    budgets.write_text(BUDGETS)
    env = worker_env(gl_env, idle_advance_s=0) | {"GATELEDGER_BUDGETS_FILE": str(budgets)}
    asyncio.run(ensure_topics(settings))
    group = gl_env["GATELEDGER_PROCESSORS_APP_ID"]
    log = tmp_path / "proc.log"

    # Day 1 to 70 % (0.42 of 0.60): only the 50 % alert.
    asyncio.run(publish(settings, twice(llm_calls("d1", D1, 70))))
    w = Worker(processes, env, log, free_port()).start()
    w.wait_ready()
    asyncio.run(wait_outputs(settings, lambda o: len(o.final(Topic.BUDGET_ALERTS)) >= 1))
    # Day 2 to 110 %, and the worker killed while it is at it.
    asyncio.run(publish(settings, twice(llm_calls("d2", D2, 110))))
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        if _metric(w.metrics(), "gateledger_processor_events_in_total", 'stage="budgets"') >= 90:
            break
        time.sleep(0.01)
    w.kill()
    assert asyncio.run(_lag(settings, group)) > 0, "the kill came too late to be mid-stream"
    w = Worker(processes, env, log, free_port()).start()
    w.wait_ready()
    # Day 1 again, late: 40 more calls take it to 110 % -> its 80 % and 100 % alerts fire, marked late.
    asyncio.run(publish(settings, twice(llm_calls("d1-late", D1 + timedelta(hours=5), 40))))

    def settled(out: Any) -> bool:
        return len(out.final(Topic.BUDGET_ALERTS)) >= 6 and len(out.final(Topic.COST_LEDGER)) == 220

    out = asyncio.run(wait_outputs(settings, settled, timeout_s=90))
    # Nothing more may come: every stage's input consumed and committed. faust commits only after
    # flushing the producer, and the committed offsets are read before the high watermarks, so an
    # output still due (itself input of the next stage) would show as lag.
    deadline = time.monotonic() + 60
    while (lag := asyncio.run(_lag(settings, group))) > 0:
        assert time.monotonic() < deadline, f"the worker never caught up (lag {lag}):\n{w.tail()}"
        time.sleep(0.3)
    out = asyncio.run(read_outputs(settings, MONEY_TOPICS))
    assert alert_keys(out) == [("day:2026-11-20", 50, False), ("day:2026-11-20", 80, True),
                               ("day:2026-11-20", 100, True), ("day:2026-11-21", 50, False),
                               ("day:2026-11-21", 80, False), ("day:2026-11-21", 100, False)]
    # Re-emissions after the kill carry the same id and the same content (only fired_at differs).
    for a in out.all(Topic.BUDGET_ALERTS):
        final = out.final(Topic.BUDGET_ALERTS)[a["id"]]
        assert {k: v for k, v in a.items() if k != "fired_at"} == {k: v for k, v in final.items() if k != "fired_at"}
    late80 = next(a for a in out.final(Topic.BUDGET_ALERTS).values() if a["threshold_pct"] == 80 and a["late"])
    assert Decimal(late80["spend_usd"]) == Decimal("0.48") and late80["time"].startswith("2026-11-20")
    # The enforcement view's topic: the latest snapshot per period has the exact spend.
    snaps: dict[str, dict[str, Any]] = {}
    for s in out.all(Topic.BUDGET_STATE):
        key = f"{s['budget_id']}|{s['period_key']}"
        if key not in snaps or s["seq"] >= snaps[key]["seq"]:
            snaps[key] = s
    assert {k: Decimal(s["spend_usd"]) for k, s in snaps.items()} == {
        "acme-daily|day:2026-11-20": Decimal("0.66"), "acme-daily|day:2026-11-21": Decimal("0.66")}
    assert snaps["acme-daily|day:2026-11-20"]["fired_thresholds"] == [50, 80, 100]

    # Through the real sink into chDB.
    db = settings.clickhouse.database

    async def sink() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_sink(settings, stop))
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            n = (await asyncio.to_thread(ch_client.query, f"SELECT count() FROM {db}.budget_alerts FINAL")).result_rows
            c = (await asyncio.to_thread(ch_client.query, f"SELECT count() FROM {db}.cost_ledger FINAL")).result_rows
            if n[0][0] >= 6 and c[0][0] >= 220:
                break
            await asyncio.sleep(0.3)
        stop.set()
        await task

    asyncio.run(sink())
    rows = ch_client.query(f"SELECT period_key, threshold_pct, late FROM {db}.budget_alerts FINAL "
                           f"ORDER BY period_key, threshold_pct").result_rows
    assert [(r[0], r[1], bool(r[2])) for r in rows] == alert_keys(out)
    spend = ch_client.query(f"SELECT toDate(time), sum(total_cost_usd) FROM {db}.cost_ledger FINAL "
                            f"GROUP BY 1 ORDER BY 1").result_rows
    assert [(str(d), Decimal(str(s))) for d, s in spend] == [("2026-11-20", Decimal("0.66")),
                                                             ("2026-11-21", Decimal("0.66"))]
