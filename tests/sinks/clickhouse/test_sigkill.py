"""The sink SIGKILLed again and again during a run of 50k events: the analyst views end with exactly
50k distinct events, no duplicates, the latest versions, and rollups equal to exact recomputation.

The sink runs as a subprocess with its own chDB directory (chDB allows one path per process); the
test reads its data only through the sink's /query endpoint. Kills come from two sides: the test
SIGKILLs the process at random moments (start-up included), and the sink kills itself at random
flush steps (tests/sinks/crashing_sink.py) so every window between two steps is hit.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import signal
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path

import pytest

from gateledger.contracts.events import McpCallStatus, OutputEvent
from gateledger.net import free_port
from gateledger.settings import Settings
from gateledger.topics import Topic
from sinks.clickhouse.service import CRASH_POINTS
from sinks.clickhouse.settings import SinkSettings
from tests.conftest import Processes, subprocess_env
from tests.sinks.checks import ALL_TIME, VIEW_ARGS, assert_rollups_exact, q, view_counts
from tests.sinks.conftest import publish, sink_lag
from tests.sinks.events import World, encode
from tests.sinks.stack_query import StackClient, auth_headers

TOTAL = 50_000
MIX = {"mcp_calls": 20_000, "llm_calls": 9_000, "cost_ledger": 10_000, "policy_decisions": 4_000,
       "webhook_decisions": 3_000, "raw_events": 4_000}


def _raw_envelope(i: int, w: World) -> bytes:
    t = w.base.isoformat().replace("+00:00", "Z")
    return (b'{"specversion":"1.0","id":"raw-%d","source":"obot/test/mcp","type":"obot.mcp.call","tenant":"acme",'
            b'"time":"%s","received_at":"%s","subject":"user-1","data":{"n":%d}}' % (i, t.encode(), t.encode(), i))


def _messages(seed: int) -> tuple[list[tuple[Topic, str, bytes]], dict[str, int], int]:
    """50k distinct events (some re-sent, some re-emitted with version 2), shuffled in chunks."""
    w = World(seed=seed)
    make = {"mcp_calls": w.mcp_call, "llm_calls": w.llm_call, "cost_ledger": w.cost, "policy_decisions": w.policy,
            "webhook_decisions": w.webhook}
    events: list[OutputEvent] = [make[t]() for t, n in MIX.items() if t in make for _ in range(n)]
    rng = random.Random(seed)
    resent = rng.sample(events, 2_500)
    bumped = [e.model_copy(update={"version": 2, "status": McpCallStatus.FAILURE})
              for e in rng.sample([e for e in events if e.table == "mcp_calls"], 800)]
    bumped += [e.model_copy(update={"version": 2, "restated": True, "total_cost_usd": e.total_cost_usd * 2})
               for e in rng.sample([e for e in events if e.table == "cost_ledger"], 500)]
    msgs = [(type(e).topic, e.id, encode(e)) for e in events]
    msgs += [(Topic.RAW_OBOT_MCP, f"k{i}", _raw_envelope(i, w)) for i in range(MIX["raw_events"])]
    rng.shuffle(msgs)
    # Re-sends and new versions come after their originals, as re-emissions do.
    later = [(type(e).topic, e.id, encode(e)) for e in resent + bumped]
    rng.shuffle(later)
    return msgs + later, {"version2": len(bumped)}, len(msgs) + len(later)


def _landed(port: int) -> int:
    try:
        req = urllib.request.Request(f"http://127.0.0.1:{port}/status", headers=auth_headers())
        with urllib.request.urlopen(req, timeout=1) as resp:  # noqa: S310
            return int(json.loads(resp.read())["landed"])
    except OSError:
        return -1


def _wait_healthy(port: int, proc, timeout_s: float = 60) -> bool:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            return False
        try:
            with urllib.request.urlopen(f"http://127.0.0.1:{port}/healthz", timeout=1):  # noqa: S310
                return True
        except OSError:
            time.sleep(0.1)
    raise AssertionError("sink did not become healthy")


@pytest.mark.slow
@pytest.mark.fault
def test_sigkill_at_random_moments_leaves_exactly_50k_events_and_exact_rollups(
    settings: Settings, gl_env: dict[str, str], processes: Processes, tmp_path: Path
) -> None:
    msgs, facts, published = _messages(seed=11)
    per_topic = Counter(t for t, _, _ in msgs)
    db = settings.clickhouse.database
    rng = random.Random(12)
    log = tmp_path / "sink.log"

    def start(crash: bool) -> tuple[object, int]:
        port = free_port()
        env = subprocess_env(gl_env | {
            "GATELEDGER_CLICKHOUSE_URL": f"chdb://{tmp_path / 'sink-chdb'}",
            "GATELEDGER_SINK_PORT": str(port),
            # Each run cuts batches differently (as a reconfigured or another replica would): only the
            # batch log's recorded ranges make a re-read batch recognisable to ClickHouse.
            "GATELEDGER_SINK_BATCH_MAX_ROWS": str(rng.randint(200, 3000)),
            "GATELEDGER_SINK_BATCH_MAX_WAIT_MS": str(rng.randint(50, 1000)),
            "CRASH_POINTS": ",".join(CRASH_POINTS) if crash else "",
            "CRASH_PROBABILITY": "0.03" if crash else "0",
        })
        return processes.start([sys.executable, "-m", "tests.sinks.crashing_sink"], env, log=log), port

    async def feed_and_kill() -> int:
        kills = 0
        chunks = [msgs[i : i + 5_000] for i in range(0, len(msgs), 5_000)]
        publisher = asyncio.create_task(_publish_slowly(settings, chunks))
        deadline = time.monotonic() + 150
        while (not publisher.done() or kills < 12) and time.monotonic() < deadline:
            proc, port = start(crash=True)
            if _wait_healthy(port, proc, 60):
                if rng.random() < 0.8:
                    # Wait until this run lands something, so most kills hit consumption and flushes.
                    until = time.monotonic() + 20
                    while _landed(port) <= 0 and proc.poll() is None and time.monotonic() < until:
                        await asyncio.sleep(0.05)
                # Random moment: during start-up, consumption, or a flush (or the sink kills itself).
                end = time.monotonic() + rng.uniform(0.0, 3.0)
                while time.monotonic() < end and proc.poll() is None:
                    await asyncio.sleep(0.02)
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()
            kills += 1
        await publisher
        return kills

    kills = asyncio.run(feed_and_kill())
    assert kills >= 12
    self_kills = Counter(line.rsplit(" ", 1)[-1] for line in log.read_text().splitlines()
                         if "fault injection: SIGKILL at" in line)
    assert sum(self_kills.values()) >= 3 and len(self_kills) >= 2, self_kills

    # A last run without faults lands whatever is left; its /query endpoint is our only way in.
    proc, port = start(crash=False)
    assert _wait_healthy(port, proc, 60)
    sink = SinkSettings()

    async def caught_up() -> None:
        deadline = time.monotonic() + 180
        while await sink_lag(settings, sink) > 0:
            assert proc.poll() is None, log.read_text()[-3000:]
            assert time.monotonic() < deadline, "the sink never caught up"
            await asyncio.sleep(0.5)

    asyncio.run(caught_up())
    client = StackClient(f"http://127.0.0.1:{port}")
    expected = {t: n for t, n in MIX.items()}
    total = 0
    for table, n in expected.items():
        rows, distinct = view_counts(client, db, table)
        assert rows == distinct == n, (table, rows, distinct)
        total += distinct
    assert total == TOTAL
    (v2,), = q(client, f"SELECT countIf(version = 2) FROM {db}.mcp_calls_latest({VIEW_ARGS})", **ALL_TIME)
    (c2,), = q(client, f"SELECT countIf(version = 2) FROM {db}.cost_ledger_latest({VIEW_ARGS})", **ALL_TIME)
    assert v2 + c2 == facts["version2"]
    # Replays never added physical rows: merges can only remove, so a table holds at most what was sent.
    for table, topic in (("mcp_calls", Topic.MCP_CALLS), ("cost_ledger", Topic.COST_LEDGER),
                         ("raw_events", Topic.RAW_OBOT_MCP)):
        (physical,), = q(client, f"SELECT count() FROM {db}.{table}")
        assert physical <= per_topic[topic], (table, physical, per_topic[topic])
    assert_rollups_exact(client, db, settings)
    (dead,), = q(client, f"SELECT count() FROM {db}.dead_letters")
    assert dead == 0
    assert published == len(msgs)


async def _publish_slowly(settings: Settings, chunks: list[list[tuple[Topic, str, bytes]]]) -> None:
    for chunk in chunks:
        await publish(settings, chunk)
        await asyncio.sleep(1.0)
