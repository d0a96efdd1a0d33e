"""Money end to end on the real broker, the real worker, the real sink and chDB: cost per interaction
through the analyst views, and `gateledger costs restate` recomputing a budget period."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from gateledger import jsonutil
from gateledger_cli.main import cli
from gateledger.settings import Settings
from gateledger.topics import Topic
from sinks.clickhouse.main import run_sink
from tests import samples
from tests.conftest import Processes
from tests.stream_processors import traffic
from tests.stream_processors.harness import (
    ensure_topics, envelope, publish, read_outputs, start_worker, wait_outputs,
)
from tests.stream_processors.budgets.test_budget_stage import _lag
from tests.stream_processors.traffic import T0

D1 = datetime(2026, 11, 20, 9, 0, tzinfo=UTC)


def sink_until(settings: Settings, ch_client: Any, ready: Callable[[], bool], timeout_s: float = 60) -> None:
    """Run the real sink until ``ready()`` holds (checked against chDB)."""

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(run_sink(settings, stop))
        deadline = time.monotonic() + timeout_s
        try:
            while time.monotonic() < deadline and not task.done():
                if await asyncio.to_thread(ready):
                    return
                await asyncio.sleep(0.3)
            raise AssertionError("sink did not land the expected rows in time")
        finally:
            stop.set()
            await task

    asyncio.run(main())


def scalar(ch_client: Any, sql: str, **params: Any) -> Any:
    return ch_client.query(sql, parameters=params).result_rows[0][0]


def test_cost_per_interaction_view(gl_env: dict[str, str], settings: Settings, processes: Processes,
                                   tmp_path: Path, ch_client: Any) -> None:
    db = settings.clickhouse.database
    asyncio.run(ensure_topics(settings))
    specs = traffic.mixed(16, seed=3)
    asyncio.run(publish(settings, traffic.events_in_time_order(specs)))
    start_worker(processes, gl_env, tmp_path, interaction_timeout_s=5)
    sink_until(settings, ch_client, lambda: scalar(
        ch_client, f"SELECT uniqExact(id) FROM {db}.interactions") == len(specs) and scalar(
        ch_client, f"SELECT uniqExact(id) FROM {db}.cost_ledger") == sum(s.audit for s in specs))
    rows = ch_client.query(
        f"SELECT request_id, cost_usd, cost_rows, unpriced_rows FROM {db}.interactions_with_cost("
        f"tenant = 'acme', since = '2026-11-20', until = '2026-11-21')").result_rows
    got = {r[0]: (None if r[1] is None else Decimal(str(r[1])), r[2], r[3]) for r in rows}
    want = {}
    for s in specs:
        if not s.audit:
            want[s.request_id] = (None, 0, 0)
        elif s.zero_tokens:
            want[s.request_id] = (Decimal(0), 1, 1)  # unpriced (zero usage): counted, never a silent price
        else:
            want[s.request_id] = (Decimal(s.prompt_tokens) * Decimal("2.5") / 10**6
                                  + Decimal(s.completion_tokens) * 10 / 10**6, 1, 0)
    assert got == want
    per = ch_client.query(f"SELECT count(), sum(cost_usd) FROM {db}.interaction_costs(tenant = '', "
                          f"since = '2026-11-20', until = '2026-11-21')").result_rows[0]
    assert per[0] == sum(s.audit for s in specs)
    assert Decimal(str(per[1])) == sum(v[0] for v in want.values() if v[0] is not None)


PRICES_BEFORE = 'schema: 1\nupdated: "2026-11-21"\nmodels: []\n'
PRICES_AFTER = """schema: 1
updated: "2026-11-21"
providers:
  acme-ai: [acme-ai]
models:
  - provider: acme-ai
    model: mystery-model-9
    prices:
      - {from: "2026-01-01", input: "5.00", output: "20.00"}
"""
BUDGETS = """
budgets:
  - name: acme-daily
    scope: {tenant: acme}
    period: day
    timezone: UTC
    limit_usd: "0.6"
    projection: false
"""


def calls(model: str, n: int, tag: str) -> list[Any]:
    return [envelope("obot-llm", samples.obot_llm(
        id=f"llm-{tag}-{i}", requestID=f"req-{tag}-{i}", modelID=model, targetModel=None,
        modelProvider="openai" if model == "gpt-4o" else "acme-ai",
        createdAt=(D1 + timedelta(seconds=i)).strftime("%Y-%m-%dT%H:%M:%SZ"))) for i in range(n)]


@pytest.mark.slow
def test_restatement_publishes_new_versions_and_the_budget_period_is_recomputed(
        gl_env: dict[str, str], settings: Settings, processes: Processes, tmp_path: Path, ch_client: Any,
        monkeypatch: Any) -> None:
    db = settings.clickhouse.database
    prices, budgets = tmp_path / "prices.yaml", tmp_path / "budgets.yaml"
    prices.write_text(PRICES_BEFORE)
    budgets.write_text(BUDGETS)
    monkeypatch.setenv("GATELEDGER_PRICES_FILE", str(prices))
    monkeypatch.setenv("GATELEDGER_BUDGETS_FILE", str(budgets))
    money_env = {"GATELEDGER_PRICES_FILE": str(prices), "GATELEDGER_BUDGETS_FILE": str(budgets)}
    asyncio.run(ensure_topics(settings))
    # 60 gpt-4o calls at $0.006 (0.36 = 60 %) and 10 calls of a model the catalog does not know yet.
    asyncio.run(publish(settings, calls("gpt-4o", 60, "known") + calls("mystery-model-9", 10, "new")))
    start_worker(processes, gl_env | money_env, tmp_path)
    asyncio.run(wait_outputs(settings, lambda o: len(o.final(Topic.BUDGET_ALERTS)) == 1
                             and len(o.final(Topic.COST_LEDGER)) == 70))
    sink_until(settings, ch_client, lambda: scalar(ch_client, f"SELECT count() FROM {db}.cost_ledger") == 70)
    assert scalar(ch_client, f"SELECT countIf(unpriced) FROM {db}.cost_ledger FINAL") == 10

    prices.write_text(PRICES_AFTER)  # the catalog learns the model: 1200 x 5 + 300 x 20 per million = 0.012
    runner = CliRunner()
    dry = jsonutil.loads(runner.invoke(cli, ["costs", "restate", "--from", "2026-11-20", "--to", "2026-11-21",
                                             "--dry-run", "--json"], catch_exceptions=False).output)
    assert dry["restated"] == 10 and not dry["published"]
    result = runner.invoke(cli, ["costs", "restate", "--from", "2026-11-20", "--to", "2026-11-21"],
                           catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert "70 cost rows" in result.output and "10 changed, 60 unchanged" in result.output
    assert "acme-daily|day:2026-11-20" in result.output and "published 10 new versions" in result.output

    # The budget stage replaces the ten zero amounts: 0.36 + 0.12 = 0.48 = 80 % -> the 80 % alert.
    out = asyncio.run(wait_outputs(settings, lambda o: len(o.final(Topic.BUDGET_ALERTS)) == 2))
    assert sorted(a["threshold_pct"] for a in out.final(Topic.BUDGET_ALERTS).values()) == [50, 80]
    alert80 = next(a for a in out.final(Topic.BUDGET_ALERTS).values() if a["threshold_pct"] == 80)
    assert Decimal(alert80["spend_usd"]) == Decimal("0.48")
    # The state read next is the last: every stage's input consumed and committed (faust commits only
    # after flushing the producer), not a second's grace.
    deadline = time.monotonic() + 60
    while (lag := asyncio.run(_lag(settings, gl_env["GATELEDGER_PROCESSORS_APP_ID"]))) > 0:
        assert time.monotonic() < deadline, f"the worker never caught up (lag {lag})"
        time.sleep(0.3)
    state = [s for s in asyncio.run(read_outputs(settings, (Topic.BUDGET_STATE,))).all(Topic.BUDGET_STATE)]
    latest = max(state, key=lambda s: s["seq"])
    assert Decimal(latest["spend_usd"]) == Decimal("0.48") and latest["unpriced_count"] == 0

    sink_until(settings, ch_client, lambda: scalar(ch_client, f"SELECT countIf(restated) FROM {db}.cost_ledger FINAL")
               == 10 and scalar(ch_client, f"SELECT count() FROM {db}.budget_alerts FINAL") == 2)
    # The latest versions sum to the recomputed spend, and status agrees.
    restated = ch_client.query(f"SELECT min(version), max(version), uniqExact(price_version) FROM {db}.cost_ledger FINAL "
                               "WHERE restated").result_rows[0]
    assert restated[:2] == ((1 << 16) + 1, (1 << 16) + 1) and restated[2] == 1
    assert Decimal(str(scalar(ch_client, f"SELECT sum(total_cost_usd) FROM {db}.cost_ledger FINAL"))) == Decimal("0.48")
    status = jsonutil.loads(runner.invoke(cli, ["budgets", "status", "--at", "2026-11-20T12:00:00Z", "--json"],
                                          catch_exceptions=False).output)
    assert Decimal(status[0]["spend_usd"]) == Decimal("0.48") and status[0]["unpriced_rows"] == 0
    # A second run finds nothing to change.
    again = jsonutil.loads(runner.invoke(cli, ["costs", "restate", "--from", "2026-11-20", "--to", "2026-11-21",
                                               "--json"], catch_exceptions=False).output)
    assert again["restated"] == 0 and again["unchanged"] == 70
