"""Helpers of the embedded-stack fault tests: traffic files, a running `up`, and what the analyst views say."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from gateledger.clickhouse.access import StackQuerier
from gateledger.stack.orphans import PIDS_FILE
from gateledger.stack.redrive import _PENDING_SQL
from gateledger.stack.state import load_running
from tests.conftest import Processes

CLI = [sys.executable, "-m", "gateledger_cli.main"]
ALL_TIME = {"since": "2000-01-01 00:00:00", "until": "2100-01-01 00:00:00", "tenant": ""}
# What the analyst views say, without wall-clock columns (emitted_at, detected_at, computed_at, ...).
VIEWS = {
    "interactions": "SELECT id, version, status, complete, llm_calls, tool_calls, webhook_rejections, errors, "
                    "total_tokens, toString(cost_usd), arraySort(event_ids) "
                    "FROM gateledger.interactions_latest(since={since:String}, until={until:String}, tenant='')",
    "findings": "SELECT id, version, kind, retracted, arraySort(evidence_event_ids) "
                "FROM gateledger.findings_latest(since={since:String}, until={until:String}, tenant='')",
    "cost": "SELECT id, version, kind, event_id, toString(total_cost_usd) "
            "FROM gateledger.cost_ledger_latest(since={since:String}, until={until:String}, tenant='')",
    "budget_alerts": "SELECT id, budget_id, kind, threshold_pct, period_key "
                     "FROM gateledger.budget_alerts_latest(since={since:String}, until={until:String}, tenant='')",
}
RAW_IDS = "SELECT uniqExact(id) FROM gateledger.raw_events"
# Settled views: unchanged for STABLE_S (what trails the interactions has landed), looked at every POLL_S.
STABLE_S = 3.0
POLL_S = 1.0


def clean_env(data_dir: Path, **extra: str) -> dict[str, str]:
    """An environment with only this test's gateledger settings."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("GATELEDGER_")}
    env.update(GATELEDGER_DATA_DIR=str(data_dir), GATELEDGER_STACK_INGEST_PORT="0",
               GATELEDGER_STACK_SUMMARY_INTERVAL_S="60",
               # Every start waits for the budget back-fill (started by the processors' 1 s gauge
               # tick) and for the processors to commit its contributions (every 2.8 s), and every
               # graceful stop for their commits: shorter here, as in the processor tests (harness.py).
               # Each fault here loses the memory-only broker, commits included, so how often the
               # processors commit changes nothing the runs compare.
               GATELEDGER_PROCESSORS_TICK_INTERVAL_S="0.2", GATELEDGER_PROCESSORS_COMMIT_INTERVAL_S="0.5",
               **extra)
    return env


def make_traffic(out: Path, seed: int, count: int, minutes_ago: int) -> int:
    """Simulated upstream records as files (`simulate --out`); returns the number of distinct events."""
    start = (datetime.now(UTC) - timedelta(minutes=minutes_ago)).strftime("%Y-%m-%dT%H:%M:%SZ")
    res = subprocess.run([*CLI, "simulate", "--out", str(out), "--count", str(count), "--seed", str(seed),
                          "--start", start], capture_output=True, text=True, timeout=120)
    assert res.returncode == 0, res.stderr
    return sum(json.loads((out / "truth.json").read_text())["distinct"].values())


def ingest(env: dict[str, str], traffic: Path) -> None:
    """Every file through the producer path (`gateledger ingest`), in one process; each acknowledged."""
    code = ("import asyncio, sys\nfrom pathlib import Path\nfrom gateledger_cli.ingest_file import ingest_file\n"
            "async def main():\n"
            "    for f in sorted(Path(sys.argv[1]).glob('*/*.jsonl')):\n"
            "        assert await ingest_file(f.stem, f, tenant=f.parent.name, install='default') == 0, f\n"
            "asyncio.run(main())\n")
    res = subprocess.run([sys.executable, "-c", code, str(traffic)], env=env, capture_output=True, text=True,
                         timeout=300)
    assert res.returncode == 0, res.stdout + res.stderr


@dataclass
class Stack:
    """One `gateledger up`."""

    proc: subprocess.Popen[bytes]
    data: Path
    log: Path

    @classmethod
    def start(cls, processes: Processes, env: dict[str, str], log: Path) -> Stack:
        """Start and wait until it is up (its state file names the supervisor)."""
        data = Path(env["GATELEDGER_DATA_DIR"])
        proc = processes.gateledger("up", env=env, log=log)
        deadline = time.monotonic() + 180
        while (state := load_running(data)) is None or state.pid != proc.pid:
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        return cls(proc, data, log)

    def querier(self) -> StackQuerier:
        state = load_running(self.data)
        assert state is not None, self.log.read_text()
        return StackQuerier.for_stack(state)

    def query(self, sql: str, params: dict[str, Any] | None = None) -> list[list[Any]]:
        return self.querier().run(sql, params).rows

    def pids(self) -> dict[str, int]:
        """The supervisor's children, from its pid file."""
        return json.loads((self.data / PIDS_FILE).read_text())["children"]

    def stop(self, sig: int = signal.SIGINT, timeout_s: float = 180) -> str:
        """Signal the supervisor, wait for it to exit (code 0), return its output."""
        self.proc.send_signal(sig)
        assert self.proc.wait(timeout_s) == 0, self.log.read_text()
        return self.log.read_text()

    def views(self) -> dict[str, set[tuple[Any, ...]]]:
        """Every compared view's rows."""
        q = self.querier()
        return {name: {json.dumps(r) for r in q.run(sql, ALL_TIME).rows} for name, sql in VIEWS.items()}

    def settled(self, raw_events: int, timeout_s: float = 600) -> dict[str, set[Any]]:
        """The views once every raw event landed and is part of a landed interaction, and the views
        did not change over STABLE_S of reads (costs and budget alerts trail the interactions).

        Looks every POLL_S: the stability window is measured, not one sleep long, so a settled
        stack is seen within a second of it and a change inside the window restarts it."""
        deadline = time.monotonic() + timeout_s
        last: dict[str, set[Any]] | None = None
        since = 0.0
        while True:
            assert time.monotonic() < deadline, f"not settled:\n{self.log.read_text()}"
            landed = self.query(RAW_IDS)[0][0]
            pending = self.query(_PENDING_SQL, {"db": "gateledger", "since": "2000-01-01 00:00:00", "tail_ms": 0})
            if int(landed) == raw_events and not pending:
                now = self.views()
                if now != last:
                    last, since = now, time.monotonic()
                elif time.monotonic() - since >= STABLE_S:
                    return now
            time.sleep(POLL_S)


async def _budget_state(bootstrap: str) -> dict[str, Any]:
    from aiokafka import TopicPartition

    from gateledger.kafka import KafkaTarget, make_consumer, true_highwaters
    from gateledger.settings import KafkaSettings
    from gateledger.topics import Topic

    kafka = KafkaSettings()
    consumer = make_consumer(kafka, KafkaTarget(bootstrap, True, ""), group_id=None)
    await consumer.start()
    try:
        tps = [TopicPartition(str(Topic.BUDGET_STATE), p) for p in range(kafka.partitions)]
        ends = await true_highwaters(kafka, bootstrap, tps)
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, 0)
        latest: dict[str, Any] = {}
        async def behind() -> bool:
            return any([await consumer.position(tp) < ends[tp] for tp in tps])

        while await behind():
            for msgs in (await consumer.getmany(*tps, timeout_ms=500)).values():
                for m in msgs:
                    snap = json.loads(m.value)
                    k = f"{snap['budget_id']}|{snap['period_key']}"
                    if k not in latest or snap["seq"] >= latest[k]["seq"]:
                        latest[k] = snap
        return latest
    finally:
        await consumer.stop()


def budget_spend(stack: Stack) -> dict[str, Any]:
    """What the budget accountant holds (the compacted budget.state topic): spend per budget period."""
    import asyncio

    state = load_running(stack.data)
    assert state is not None
    latest = asyncio.run(_budget_state(state.kafka_bootstrap))
    return {k: (s["spend_usd"], sorted(s.get("buckets", {}).items())) for k, s in latest.items()}


def diff(ref: dict[str, set[Any]], got: dict[str, set[Any]]) -> dict[str, tuple[int, int, int]]:
    """Per view: rows in both, only in the reference, only in the run (empty when equal)."""
    out = {}
    for name in ref:
        if ref[name] != got[name]:
            out[name] = (len(ref[name] & got[name]), len(ref[name] - got[name]), len(got[name] - ref[name]))
    return out
