"""Draining (`gateledger up` stopping): on SIGUSR1 `gateledger serve ingest` refuses new records with
503 + Retry-After on every worker, while health and metrics still answer and the port stays open."""

from __future__ import annotations

import asyncio
import signal
import time
from pathlib import Path

import aiohttp

from gateledger.net import free_port, wait_port
from tests import samples
from tests.conftest import Processes, subprocess_env


def test_sigusr1_turns_every_worker_to_503_with_retry_after(gl_env: dict[str, str], processes: Processes,
                                                            tmp_path: Path) -> None:
    port = free_port()
    env = subprocess_env({**gl_env, "GATELEDGER_INGEST_PORT": str(port), "GATELEDGER_INGEST_WORKERS": "2",
                          "GATELEDGER_INGEST_RETRY_AFTER_S": "7"})
    log = tmp_path / "ingest.log"
    proc = processes.gateledger("serve", "ingest", env=env, log=log)
    wait_port("127.0.0.1", port, 60)
    base = f"http://127.0.0.1:{port}"

    async def post_all(http: aiohttp.ClientSession, n: int) -> list[tuple[int, str | None]]:
        out = []
        for i in range(n):  # enough requests that both workers answer some
            async with http.post(f"{base}/v1/ingest/obot-llm", json=[samples.obot_llm(id=f"d-{i}")]) as r:
                out.append((r.status, r.headers.get("Retry-After")))
        return out

    async def main() -> None:
        async with aiohttp.ClientSession() as http:
            deadline = time.monotonic() + 30
            while set(await post_all(http, 4)) != {(200, None)}:
                assert time.monotonic() < deadline, log.read_text()
            proc.send_signal(signal.SIGUSR1)
            deadline = time.monotonic() + 30
            while (answers := set(await post_all(http, 20))) != {(503, "7")}:
                assert time.monotonic() < deadline, (answers, log.read_text())
            for path in ("/healthz", "/metrics"):
                async with http.get(base + path) as r:
                    assert r.status == 200

    asyncio.run(main())
    proc.send_signal(signal.SIGTERM)
    assert proc.wait(30) == 0, log.read_text()
