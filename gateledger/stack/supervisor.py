"""``gateledger up``: the embedded stack under one supervisor.

Starts, in order: the Tansu broker, topics, the sink (which owns chDB, runs migrations and answers
queries), the stream processors, the ingest service and optionally the demo simulator. Restarts a
crashed service with backoff; stops everything in reverse order on SIGINT/SIGTERM. The broker is
memory-only, so if it dies the stack stops rather than carry on with lost topics.
"""

from __future__ import annotations

import asyncio
import contextlib
import fcntl
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

import aiohttp

from gateledger.kafka import ensure_gateledger_topics, wait_for_broker, KafkaTarget
from gateledger.net import free_port
from gateledger.settings import Settings
from gateledger.stack import state as stack_state
from gateledger.stack.broker import TansuBroker

log = logging.getLogger(__name__)


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
    backoff_s: float = 0.5
    next_start: float = 0.0
    exit_codes: list[int] = field(default_factory=list)

    async def start(self) -> None:
        """Spawn the process (its own session, so Ctrl-C reaches only the supervisor)."""
        out: Any = open(self.log_path, "ab") if self.log_path else asyncio.subprocess.DEVNULL  # noqa: SIM115
        try:
            self.process = await asyncio.create_subprocess_exec(
                *self.argv, env=self.env, stdout=out, stderr=asyncio.subprocess.STDOUT, start_new_session=True
            )
        finally:
            if hasattr(out, "close"):
                out.close()
        self.started_at = time.monotonic()

    def running(self) -> bool:
        return self.process is not None and self.process.returncode is None

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


async def wait_healthy(url: str, service: Service, timeout_s: float) -> None:
    """Poll a /healthz URL until it answers 200, failing fast if the process exits."""
    deadline = time.monotonic() + timeout_s
    async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=2)) as session:
        while time.monotonic() < deadline:
            if not service.running():
                raise StackError(f"{service.name} exited during start-up (see {service.log_path})")
            with contextlib.suppress(aiohttp.ClientError, OSError, TimeoutError):
                async with session.get(url) as resp:
                    if resp.status == 200:
                        return
            await asyncio.sleep(0.1)
    raise StackError(f"{service.name} not healthy after {timeout_s:.0f}s (see {service.log_path})")


class Supervisor:
    """Runs the embedded stack until stopped."""

    def __init__(
        self,
        settings: Settings,
        *,
        demo: bool = False,
        demo_args: list[str] | None = None,
        duration_s: float | None = None,
        out: TextIO = sys.stdout,
        summary: Callable[[str], Any] | None = None,
    ) -> None:
        self.settings = settings
        self.demo = demo
        self.demo_args = demo_args or []
        self.duration_s = duration_s
        self.out = out
        self.services: list[Service] = []
        self.broker: TansuBroker | None = None
        self.stop_event = asyncio.Event()
        self.state: stack_state.StackState | None = None
        self._lock_fd: int | None = None
        self._summary = summary

    # -- lifecycle -----------------------------------------------------------------------------

    def _acquire_lock(self, data_dir: Path) -> None:
        data_dir.mkdir(parents=True, exist_ok=True)
        fd = os.open(data_dir / "stack.lock", os.O_RDWR | os.O_CREAT, 0o600)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            os.close(fd)
            running = stack_state.load_running(data_dir)
            pid = f" (pid {running.pid})" if running else ""
            raise StackError(f"a stack is already running on {data_dir}{pid}") from None
        self._lock_fd = fd

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    async def run(self) -> int:
        """Start everything, supervise, stop; returns the exit code."""
        core, stack = self.settings.core, self.settings.stack
        self._acquire_lock(core.data_dir)
        logs = core.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self.stop_event.set)
        code = 0
        try:
            await self._start(logs)
            code = await self._supervise()
        except StackError as exc:
            self._print(f"error: {exc}")
            code = 1
        finally:
            await self._shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM):
                loop.remove_signal_handler(sig)
            self._release_lock()
        return code

    async def _start(self, logs: Path) -> None:
        core, stack, kafka = self.settings.core, self.settings.stack, self.settings.kafka
        host = stack.host
        self.broker = TansuBroker(stack.broker_port, host, log_path=logs / "broker.log")
        self.broker.start()
        await wait_for_broker(self.broker.bootstrap)
        target = KafkaTarget(self.broker.bootstrap, True, core.topic_prefix)
        await ensure_gateledger_topics(kafka, target)

        sink_port = stack.sink_port or free_port(host)
        proc_port = stack.processors_port or free_port(host)
        ingest_port = stack.ingest_port or free_port(host)
        notifier_port = free_port(host)
        env = dict(os.environ)
        env.update(
            GATELEDGER_DATA_DIR=str(core.data_dir),
            GATELEDGER_TOPIC_PREFIX=core.topic_prefix,
            GATELEDGER_KAFKA_BOOTSTRAP_SERVERS=self.broker.bootstrap,
            GATELEDGER_KAFKA_TANSU_WORKAROUNDS="true",
            GATELEDGER_SINK_HOST=host,
            GATELEDGER_SINK_PORT=str(sink_port),
            GATELEDGER_PROCESSORS_HOST=host,
            GATELEDGER_PROCESSORS_PORT=str(proc_port),
            GATELEDGER_INGEST_HOST=host,
            GATELEDGER_INGEST_PORT=str(ingest_port),
            GATELEDGER_NOTIFIER_HOST=host,
            GATELEDGER_NOTIFIER_PORT=str(notifier_port),
        )
        cli = [sys.executable, "-m", "gateledger.cli.main"]
        sink_url = f"http://{host}:{sink_port}"
        proc_url = f"http://{host}:{proc_port}"
        ingest_url = f"http://{host}:{ingest_port}"
        plan = [
            Service("sink", [*cli, "serve", "sink"], env, f"{sink_url}/healthz", logs / "sink.log"),
            Service("processors", [*cli, "serve", "processors"], env, f"{proc_url}/healthz", logs / "processors.log"),
            Service("ingest", [*cli, "serve", "ingest"], env, f"{ingest_url}/healthz", logs / "ingest.log"),
            # Budget alerts -> webhooks (GATELEDGER_NOTIFIER_WEBHOOKS); with none configured it only consumes.
            Service("notifier", [*cli, "serve", "notifier"], env, f"http://{host}:{notifier_port}/healthz",
                    logs / "notifier.log"),
        ]
        if env.get("GATELEDGER_OBOT_URL"):
            # The Obot audit API poller runs only when an Obot installation is configured.
            plan.append(Service("poller", [*cli, "serve", "poller"], env, None, logs / "poller.log"))
        for svc in plan:
            self.services.append(svc)
            await svc.start()
            if svc.health_url:
                await wait_healthy(svc.health_url, svc, timeout_s=90)
        self.state = stack_state.started_now(
            data_dir=core.data_dir,
            topic_prefix=core.topic_prefix,
            kafka_bootstrap=self.broker.bootstrap,
            ingest_url=ingest_url,
            sink_url=sink_url,
            processors_url=proc_url,
            clickhouse_dsn=self.settings.clickhouse.dsn(core),
        )
        self.state.save()
        self._banner()
        if self.demo:
            demo = Service(
                "demo",
                [*cli, "simulate", "--target", ingest_url, *self.demo_args],
                env,
                None,
                logs / "demo.log",
                restart=False,
            )
            self.services.append(demo)
            await demo.start()
            self._print(f"  demo traffic     simulator -> {ingest_url} (log: {demo.log_path})")
        self._print()

    def _banner(self) -> None:
        assert self.state and self.broker
        s = self.state
        self._print("gateledger is up")
        self._print(f"  kafka (tansu)    {s.kafka_bootstrap}")
        self._print(f"  ingest HTTP      {s.ingest_url}  (POST /v1/ingest/<format>, GET /metrics)")
        self._print(f"  processors       {s.processors_url}  (faust web, GET /metrics)")
        self._print(f"  sink + chDB      {s.sink_url}  (GET /metrics; owns {s.clickhouse_dsn})")
        self._print(f"  data dir         {s.data_dir}  (logs in {s.data_dir / 'logs'})")
        self._print('  query            gateledger sql "SELECT type, count() FROM gateledger.raw_events GROUP BY type"')
        self._print("  status           gateledger status")
        self._print("  stop             Ctrl-C")

    async def _supervise(self) -> int:
        stack = self.settings.stack
        started = time.monotonic()
        next_summary = started + stack.summary_interval_s
        while not self.stop_event.is_set():
            if self.broker is None or not self.broker.alive():
                self._print("error: the Kafka broker exited; its data was in memory, stopping the stack")
                return 1
            now = time.monotonic()
            for svc in self.services:
                if svc.running():
                    if now - svc.started_at > 60:
                        svc.backoff_s = 0.5
                    continue
                if svc.process is not None and svc.process.returncode is not None and svc.next_start == 0.0:
                    svc.exit_codes.append(svc.process.returncode)
                    if not svc.restart:
                        if svc.name == "demo" and svc.process.returncode == 0:
                            self._print("demo traffic finished")
                        svc.process = None
                        continue
                    svc.next_start = now + svc.backoff_s
                    self._print(
                        f"{svc.name} exited with code {svc.process.returncode}; restarting in {svc.backoff_s:.1f}s"
                    )
                    svc.backoff_s = min(svc.backoff_s * 2, stack.restart_backoff_max_s)
                elif svc.next_start and now >= svc.next_start:
                    svc.next_start = 0.0
                    svc.restarts += 1
                    await svc.start()
            if self.duration_s is not None and now - started >= self.duration_s:
                return 0
            if now >= next_summary:
                next_summary = now + stack.summary_interval_s
                await self._print_summary()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.stop_event.wait(), 0.25)
        return 0

    async def _print_summary(self, final: bool = False) -> None:
        if self._summary is None or self.state is None:
            return
        try:
            text = await self._summary(self.state.sink_url)
        except Exception as exc:  # a summary must never take the stack down
            text = f"(summary unavailable: {exc})"
        self._print(("final summary\n" if final else "") + text)

    async def _shutdown(self) -> None:
        if self.state is not None:
            demo = [s for s in self.services if s.name == "demo"]
            for svc in demo:
                await svc.stop()
            await self._print_summary(final=True)
        for svc in reversed(self.services):
            await svc.stop()
        if self.broker is not None:
            self.broker.stop()
        stack_state.remove(self.settings.core.data_dir)
        if self.state is not None:
            self._print("gateledger stopped")
