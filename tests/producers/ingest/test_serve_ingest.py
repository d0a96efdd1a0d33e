"""`gateledger serve ingest` as a process, with several workers sharing the port."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp

from gateledger.net import free_port, wait_port
from gateledger.settings import Settings
from gateledger.topics import Topic
from tests import samples
from tests.conftest import Processes, subprocess_env
from tests.producers.kafkaread import read_topic


def test_two_workers_share_the_port_and_stop_cleanly(settings: Settings, gl_env: dict[str, str],
                                                     processes: Processes, tmp_path: Path) -> None:
    port = free_port()
    env = subprocess_env({**gl_env, "GATELEDGER_INGEST_PORT": str(port), "GATELEDGER_INGEST_WORKERS": "2"})
    log = tmp_path / "ingest.log"
    proc = processes.gateledger("serve", "ingest", env=env, log=log)
    wait_port("127.0.0.1", port, 60)

    async def main() -> None:
        # A new connection per request: the kernel spreads connections (not requests) over the workers.
        async with aiohttp.ClientSession(connector=aiohttp.TCPConnector(force_close=True)) as http:
            pids: set[int] = set()
            deadline = time.monotonic() + 30
            while len(pids) < 2:  # both workers answer on the one port, each with its own pid
                assert time.monotonic() < deadline, f"only workers {pids} answered; log:\n{log.read_text()}"
                async with http.get(f"http://127.0.0.1:{port}/healthz") as r:
                    if r.status == 200:
                        pids.add((await r.json())["pid"])
            assert proc.pid not in pids  # the workers, not the parent that started them
            assert len(pids) == 2
            statuses = []
            for i in range(40):
                async with http.post(f"http://127.0.0.1:{port}/v1/ingest/obot-llm",
                                     json=[samples.obot_llm(id=f"w-{i}")]) as r:
                    statuses.append(r.status)
            assert set(statuses) == {200}, log.read_text()
        events = await read_topic(settings, Topic.RAW_OBOT_LLM, until=lambda got: len(got) >= 40)
        assert len({e["data"]["id"] for e in events}) == 40

    asyncio.run(main())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log.read_text()
