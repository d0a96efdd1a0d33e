"""One supervised child process of the embedded stack, and waiting for it to be healthy."""

from __future__ import annotations

import asyncio
import contextlib
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import aiohttp

from gateledger.stack.orphans import die_with_parent


class StackError(RuntimeError):
    """The stack could not start."""


@dataclass
class Service:
    """One supervised child process."""

    name: str
    argv: list[str]
    env: dict[str, str]
    health_url: str | None = None
    log_path: Path | None = None
    restart: bool = True
    process: asyncio.subprocess.Process | None = None
    started_at: float = 0.0
    restarts: int = 0
    crashes: int = 0  # exits in a row, none after a minute's run: how long the restart waits (RESTART)
    next_start: float = 0.0
    exit_codes: list[int] = field(default_factory=list)

    async def start(self) -> None:
        """Spawn the process: its own session (Ctrl-C reaches only the supervisor), and it dies with us."""
        out: Any = open(self.log_path, "ab") if self.log_path else asyncio.subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True,
                preexec_fn=die_with_parent(),
            )
        finally:
            if hasattr(out, "close"):
                out.close()
        self.started_at = time.monotonic()
        self.next_start = 0.0

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

    def signal(self, sig: int) -> None:
        """Send a signal if the process runs."""
        if self.running():
            assert self.process is not None
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(sig)

    async def stop(self, timeout_s: float = 20.0) -> None:
        """SIGTERM, wait, then SIGKILL."""
        proc = self.process
        if proc is None or proc.returncode is not None:
            return
        with contextlib.suppress(ProcessLookupError):
            proc.send_signal(signal.SIGTERM)
        try:
            await asyncio.wait_for(proc.wait(), timeout_s)
        except TimeoutError:
            with contextlib.suppress(ProcessLookupError):
                proc.kill()
            await proc.wait()


async def wait_healthy(url: str, service: Service, timeout_s: float,
                       ready: Callable[[Any], bool] | None = None) -> None:
    """Poll a /healthz URL until it answers 200 (and ``ready`` accepts its JSON), failing fast if the
    process exits."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if not service.running():
                raise StackError(f"{service.name} exited during start-up (see {service.log_path})")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError, ValueError):
                async with session.get(url) as resp:
                    if resp.status == 200 and (ready is None or ready(await resp.json(content_type=None))):
                        return
            await asyncio.sleep(0.1)
    raise StackError(f"{service.name} not healthy after {timeout_s:.0f}s (see {service.log_path})")
