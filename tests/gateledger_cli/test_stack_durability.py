"""The embedded stack keeps what it accepted (issue 17), each fault compared with one crash-free run
of the same traffic through the analyst views (interactions, findings, cost, budget alerts):

* Ctrl-C right after ingest, then `up` again: the stop drains, the start re-drives; a block budget
  exhausted before the restart blocks again after it (its spend is back-filled from ClickHouse);
* SIGKILL of the broker child mid-stream: the supervisor restarts it and the services behind a
  re-drive; SIGKILL of one service: the supervisor restarts it;
* SIGKILL of the supervisor mid-stream: its children die with it, a new `up` clears what is left
  and re-drives;
* the scheduled broker recycle (issue 23), after a drained pipeline (the processors' state carried to
  the new broker) and with the processors stuck (empty state behind the re-drive).

Six stack starts in all (each costs seconds on a 2-core machine): one reference, two per fault run,
one for the recycles (plus two restarts inside it).
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import time
from pathlib import Path

import aiohttp
import asyncio
import pytest

from gateledger import jsonutil
from tests.gateledger_cli.stack_faults import CLI, RAW_IDS, Stack, budget_spend, clean_env, diff, ingest, make_traffic
from tests.conftest import Processes

# Each stack start and settle takes seconds to minutes on a loaded 2-core machine.
pytestmark = [pytest.mark.slow, pytest.mark.fault, pytest.mark.timeout(2400)]


@pytest.fixture(scope="module")
def traffic(tmp_path_factory: pytest.TempPathFactory) -> dict[str, tuple[Path, int]]:
    """Two batches of simulated traffic (files) and their distinct event counts."""
    root = tmp_path_factory.mktemp("traffic")
    return {"one": (root / "one", make_traffic(root / "one", seed=7, count=12, minutes_ago=20)),
            "two": (root / "two", make_traffic(root / "two", seed=8, count=12, minutes_ago=10))}


def data_dir(tmp_path: Path, name: str) -> dict[str, str]:
    """A data dir with a block budget the traffic exhausts (acme's spend over 24 rolling hours)."""
    env = clean_env(tmp_path / name)
    res = subprocess.run([*CLI, "budgets", "add", "acme-block", "--limit", "0.000001", "--period", "rolling",
                          "--hours", "24", "--scope", "tenant=acme", "--action", "block"],
                         env=env, capture_output=True, text=True, timeout=60)
    assert res.returncode == 0, res.stderr
    return env


def behind(stack: Stack) -> int:
    """Pause the processors (SIGSTOP): what is ingested next lands raw but is not processed, so a
    fault that hits then is mid-stream by construction, not by timing luck. Returns their pid."""
    pid = stack.pids()["processors"]
    os.kill(pid, signal.SIGSTOP)
    return pid


def alive(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    return bool(cmdline)


def wait_until(cond, what: str, log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while not cond():
        assert time.monotonic() < deadline, f"{what}:\n{log.read_text()}"
        time.sleep(0.5)


async def _webhook_filter(ingest_url: str) -> int:
    """An Obot webhook-filter call for acme's tool call: 402 while acme's block budget is exhausted."""
    body = jsonutil.dumps({"jsonrpc": "2.0", "id": 1, "method": "tools/call",
                           "params": {"name": "search_issues", "arguments": {"q": "is:open"}}})
    headers = {"X-Gateledger-Tenant": "acme", "X-Obot-User-Id": "alice", "X-Obot-Mcp-Server-Id": "ms-github",
               "Content-Type": "application/json"}
    async with aiohttp.ClientSession() as s, s.post(f"{ingest_url}/v1/obot/webhook", data=body,
                                                     headers=headers) as r:
        return r.status


@pytest.fixture(scope="module")
def reference(traffic, tmp_path_factory: pytest.TempPathFactory) -> dict[str, dict]:
    """The crash-free run: the views after batch one, and after both batches."""
    tmp = tmp_path_factory.mktemp("reference")
    processes = Processes()
    try:
        env = data_dir(tmp, "data")
        stack = Stack.start(processes, env, tmp / "up.log")
        ingest(env, traffic["one"][0])
        one = stack.settled(traffic["one"][1])
        spend = budget_spend(stack)
        ingest(env, traffic["two"][0])
        both = stack.settled(traffic["one"][1] + traffic["two"][1])
        stack.stop()
    finally:
        processes.stop_all()
    assert len(one["interactions"]) >= 12 and one["findings"] and one["cost"] and one["budget_alerts"]
    assert spend, "the accountant published no budget state"
    return {"one": one, "both": both, "spend": spend}


def test_ctrl_c_right_after_ingest_loses_nothing_and_budgets_still_block(
        traffic, reference, tmp_path: Path, processes: Processes) -> None:
    env = data_dir(tmp_path, "data")
    one, both = traffic["one"][1], traffic["one"][1] + traffic["two"][1]
    first = Stack.start(processes, env, tmp_path / "up1.log")
    ingest(env, traffic["one"][0])
    out = first.stop()
    assert "ingest answers 503 + Retry-After" in out and "drain: processors caught up" in out, out
    assert "drain: sink caught up" in out and "drain: done" in out and "gateledger stopped" in out, out

    second = Stack.start(processes, env, tmp_path / "up2.log")
    # As soon as the stack is up, the accountant's spend is the crash-free run's, though the
    # broker's cost.ledger, budget state and changelogs were in memory: the processors counted it
    # again from ClickHouse's cost_ledger before the ingest opened, so block budgets block at once.
    assert "budgets: spend restored" in second.log.read_text(), second.log.read_text()
    assert budget_spend(second) == reference["spend"]
    got = second.settled(one)
    assert not diff(reference["one"], got), diff(reference["one"], got)

    # A stop that cannot drain (the processors paused, the raw events landed): progress is printed,
    # a second Ctrl-C stops at once, and the next start re-drives what was not processed.
    behind(second)
    ingest(env, traffic["two"][0])
    wait_until(lambda: second.query(RAW_IDS)[0][0] == both, "raw events did not land", second.log)
    second.proc.send_signal(signal.SIGINT)
    wait_until(lambda: "drain: processors" in second.log.read_text(), "no drain progress", second.log)
    out = second.stop()
    assert "message(s) behind" in out and "second stop signal: stopping at once" in out, out

    third = Stack.start(processes, env, tmp_path / "up3.log")
    assert "re-drive:" in third.log.read_text(), third.log.read_text()
    got = third.settled(both)
    assert not diff(reference["both"], got), diff(reference["both"], got)
    # The block budget exhausted before the restarts blocks after them.
    ingest_url = json.loads((third.data / "stack.json").read_text())["ingest_url"]
    started = time.monotonic()
    wait_until(lambda: asyncio.run(_webhook_filter(ingest_url)) == 402, "acme's block budget no longer blocks",
               third.log, timeout_s=120)
    print(f"block budget enforced {time.monotonic() - started:.1f}s after the views settled")
    third.stop()


def test_broker_service_and_supervisor_crashes_lose_nothing(
        traffic, reference, tmp_path: Path, processes: Processes) -> None:
    env = data_dir(tmp_path, "data")
    stack = Stack.start(processes, env, tmp_path / "up1.log")
    one, both = traffic["one"][1], traffic["one"][1] + traffic["two"][1]

    # A crashed service is restarted by the supervisor (a new process answers).
    notifier = stack.pids()["notifier"]
    os.kill(notifier, signal.SIGKILL)
    wait_until(lambda: stack.pids().get("notifier", notifier) != notifier, "notifier not restarted", stack.log)
    assert "notifier exited with code -9; restarting" in stack.log.read_text()

    # SIGKILL of the broker mid-stream, once every raw event landed in ClickHouse (the processors
    # behind): restarted with the services, and the re-drive completes the processing.
    behind(stack)
    ingest(env, traffic["one"][0])
    wait_until(lambda: stack.query(RAW_IDS)[0][0] == one, "raw events did not land", stack.log)
    broker = stack.pids()["broker"]
    os.kill(broker, signal.SIGKILL)
    wait_until(lambda: "stack restarted after the broker crash" in stack.log.read_text(), "no broker restart",
               stack.log, timeout_s=180)
    assert stack.pids()["broker"] != broker and "re-drive:" in stack.log.read_text()
    got = stack.settled(one)
    assert not diff(reference["one"], got), diff(reference["one"], got)

    # SIGKILL of the supervisor mid-stream: its children die with it; a new `up` starts cleanly on
    # the same data dir (chDB lock and ports free) and re-drives what was not processed.
    paused = behind(stack)
    ingest(env, traffic["two"][0])
    wait_until(lambda: stack.query(RAW_IDS)[0][0] == both, "raw events did not land", stack.log)
    children = stack.pids()
    stack.proc.send_signal(signal.SIGKILL)
    stack.proc.wait(10)
    # The running children died with it; the paused one cannot act on its parent-death signal until
    # continued: it is the leftover the new `up` clears.
    wait_until(lambda: not any(alive(p) for n, p in children.items() if p != paused),
               "children outlived the supervisor", stack.log, timeout_s=60)
    assert alive(paused)
    again = Stack.start(processes, env, tmp_path / "up2.log")
    out = again.log.read_text()
    assert "did not stop cleanly; stopping its leftovers: processors" in out and "re-drive:" in out, out
    assert not alive(paused)
    got = again.settled(both)
    assert not diff(reference["both"], got), diff(reference["both"], got)
    again.stop()


def test_broker_recycle_mid_traffic_loses_nothing(traffic, reference, tmp_path: Path, processes: Processes) -> None:
    """The scheduled broker recycle (issue 23; SIGUSR2 asks for one now, the schedule calls the same
    path): once with the pipeline drained; once with the processors stuck mid-stream, so only the
    re-drive can complete their work. The views end equal to the crash-free run's."""
    env = data_dir(tmp_path, "data")
    # No recycle by schedule in this test (they would come at moments the test does not choose);
    # a short drain budget for the recycle that finds the processors stuck.
    env.update(GATELEDGER_STACK_BROKER_RECYCLE_MIN_UPTIME_S="100000", GATELEDGER_STACK_BROKER_RECYCLE_CHECK_S="0.5",
               GATELEDGER_STACK_BROKER_RECYCLE_DRAIN_TIMEOUT_S="15")
    stack = Stack.start(processes, env, tmp_path / "up.log")
    one, both = traffic["one"][1], traffic["one"][1] + traffic["two"][1]

    def recycled(n: int) -> bool:
        return stack.log.read_text().count("broker recycled (") >= n

    # Recycle right after the first batch was accepted: the ingest refuses, the pipeline drains.
    broker = stack.pids()["broker"]
    ingest(env, traffic["one"][0])
    stack.proc.send_signal(signal.SIGUSR2)
    wait_until(lambda: recycled(1), "no recycle", stack.log, timeout_s=300)
    out = stack.log.read_text()
    assert "recycling the Kafka broker: asked for (SIGUSR2)" in out and "drain: processors" in out, out
    # Drained: the processors' state went to the new broker (their changelogs, compacted), not lost.
    saved = re.search(r"processor state saved, ([\d,]+) entr", out)
    restored = re.search(r"processor state restored, ([\d,]+) entr", out)
    assert saved and restored and saved.group(1) == restored.group(1) != "0", out
    assert stack.pids()["broker"] != broker

    # Recycle with the processors stuck and every raw event landed: the drain gives up after its
    # budget, the sink has landed every raw event, so the broker restarts and the re-drive finishes.
    stuck = behind(stack)
    ingest(env, traffic["two"][0])
    wait_until(lambda: stack.query(RAW_IDS)[0][0] == both, "raw events did not land", stack.log)
    stack.proc.send_signal(signal.SIGUSR2)
    wait_until(lambda: recycled(2), "no second recycle", stack.log, timeout_s=300)
    got = stack.settled(both)
    assert not diff(reference["both"], got), diff(reference["both"], got)
    second = stack.log.read_text().split("broker recycled (1 ")[1]
    assert "drain: processors still" in second and "re-drive:" in second, second[:2000]
    assert "processor state saved" not in second, "state is carried only when the drain completed"
    assert not alive(stuck)
    stack.stop()
