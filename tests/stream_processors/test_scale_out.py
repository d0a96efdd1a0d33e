"""Two workers share the partitions, one is killed, and the final outputs equal one worker's.

A second worker joins while phase 1 streams (the partitions split between the two, each recovers
the tables of its new partitions). Once phase 1 is committed the first is SIGKILLed: the survivor
takes its partitions over after the session timeout and has only the changelogs to rebuild their
state from. Phase 2 then completes every interaction. The traffic is cut as in
``test_recovery.py`` (phase 1: pre-checks and MCP request halves; phase 2: audits and response
halves), so a stale or missing table entry shows as a different final row. Two partitions: each
worker holds one, and with faust's default of one standby replica each also follows the other's
changelog partitions, so the takeover promotes a standby (recovery from the changelogs alone, with
no standby, is ``test_recovery.py``'s, as is a kill before the first commit).
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from gateledger.kafka import ensure_gateledger_topics, resolve
from gateledger.net import free_port
from gateledger.topics import Topic
from tests.conftest import Processes
from tests.stream_processors.harness import Worker, publish
from tests.stream_processors.test_recovery import (
    _metric, _run_env, _settings_for, assert_same_final_rows, collapsed, cut_traffic, run_reference,
    wait_committed, wait_final,
)


@pytest.mark.fault
@pytest.mark.slow
def test_a_second_worker_joins_and_the_first_is_killed_with_identical_final_outputs(
        gl_env: dict[str, str], processes: Processes, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    partitions = 2
    specs, phase1, phase2, want = cut_traffic(partitions, seed=11)
    common = {"GATELEDGER_KAFKA_PARTITIONS": str(partitions)}

    ref_env = _run_env(gl_env, "ref", **common)
    reference = run_reference(ref_env, _settings_for(ref_env, monkeypatch), processes, tmp_path / "ref.log",
                              phase1, phase2, want)

    env = _run_env(gl_env, "two", **common)
    settings = _settings_for(env, monkeypatch)
    target = resolve(settings.kafka, settings.core)
    group = env["GATELEDGER_PROCESSORS_APP_ID"]
    asyncio.run(ensure_gateledger_topics(settings.kafka, target))
    first = Worker(processes, env, tmp_path / "first.log", free_port()).start()
    first.wait_ready()
    chunks = [phase1[i * len(phase1) // 4:(i + 1) * len(phase1) // 4] for i in range(4)]
    asyncio.run(publish(settings, chunks[0]))
    second = Worker(processes, env, tmp_path / "second.log", free_port()).start()
    asyncio.run(publish(settings, chunks[1]))
    second.wait_ready(timeout_s=120)
    asyncio.run(publish(settings, chunks[2]))
    # Both hold partitions now: the one killed below has state only the changelogs can give back.
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if all(_metric(w.metrics(), "gateledger_processor_events_in_total", 'stage="normalize"') > 0
               for w in (first, second)):
            break
        time.sleep(0.2)
    else:
        raise AssertionError(f"the partitions did not split; first:\n{first.tail()}\nsecond:\n{second.tail()}")
    asyncio.run(publish(settings, chunks[3]))
    # Phase 1 processed and committed by both: from here on only the changelogs know the killed
    # worker's half (a replay of uncommitted events cannot paper over stale state).
    wait_committed(settings, group, second)
    first.kill()
    asyncio.run(publish(settings, phase2))
    got = wait_final(settings, want, second, timeout_s=300)

    ref = collapsed(reference)
    assert len(ref[str(Topic.INTERACTIONS)]) == len(specs) + partitions  # + each partition's sentinel
    assert_same_final_rows(ref, collapsed(got))
