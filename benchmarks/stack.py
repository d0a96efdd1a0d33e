"""A real ``gateledger up`` (embedded Tansu + sink + processors + ingest, each its own process) for benchmarks."""

from __future__ import annotations

import asyncio
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from benchmarks.common import children, cmdline, cpu_seconds, rss_kib

SERVICES = {"sink": "serve sink", "processors": "serve processors", "ingest": "serve ingest",
            "notifier": "serve notifier", "broker": "tansu"}


class Stack:
    """``gateledger up`` in a temporary data directory; queries go through its sink."""

    def __init__(self, extra_env: dict[str, str] | None = None) -> None:
        self.dir = Path(tempfile.mkdtemp(prefix="gl-bench-stack-"))
        self.env = {k: v for k, v in os.environ.items() if not k.startswith("GATELEDGER_")}
        from gateledger.net import free_port

        # A free ingest port: a stack someone else runs on this machine holds the default (8480).
        self.env.update(GATELEDGER_DATA_DIR=str(self.dir), GATELEDGER_MASKING_SALT="bench",
                        GATELEDGER_LOG_LEVEL="WARNING", GATELEDGER_STACK_INGEST_PORT=str(free_port()),
                        **(extra_env or {}))
        self.proc: subprocess.Popen[bytes] | None = None
        self.state: Any = None
        self.pids: dict[str, int] = {}

    def start(self, timeout_s: float = 180) -> None:
        from gateledger.stack.state import load_running

        log = open(self.dir / "up.log", "wb")  # noqa: SIM115
        self.proc = subprocess.Popen([sys.executable, "-m", "gateledger_cli.main", "up"], env=self.env, stdout=log,
                                     stderr=subprocess.STDOUT, start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout_s
        while (state := load_running(self.dir)) is None:
            if self.proc.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("gateledger up did not start: " + (self.dir / "up.log").read_text()[-3000:])
            time.sleep(0.2)
        self.state = state
        self.find_pids()

    def find_pids(self) -> dict[str, int]:
        """The services' current pids (a broker recycle or a crash restarts them under new ones)."""
        assert self.proc is not None
        for pid in children(self.proc.pid):
            line = cmdline(pid)
            for name, needle in SERVICES.items():
                if needle in line:
                    self.pids[name] = pid
        return self.pids

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        """Rows of a query, through the running sink (chDB belongs to it)."""
        from gateledger.clickhouse.access import StackQuerier

        db = self.database
        return StackQuerier.for_stack(self.state).run(sql.replace("$db", db)).rows

    async def aquery(self, sql: str) -> list[tuple[Any, ...]]:
        from gateledger.clickhouse.access import StackQuerier

        return (await StackQuerier.for_stack(self.state).run_async(sql.replace("$db", self.database))).rows

    database = "gateledger"  # the default: the stack's environment names none

    def rss_mib(self, field: str = "VmRSS") -> dict[str, float]:
        return {name: round(rss_kib(pid, field) / 1024, 1) for name, pid in self.pids.items()}

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(40)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        shutil.rmtree(self.dir, ignore_errors=True)

    def __enter__(self) -> Stack:
        try:
            self.start()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


class ServiceSampler:
    """RSS and CPU seconds of every service (and of this process, the load generator) over a window.

    CPU is what each process used between ``start`` and the last sample (from /proc), so the end-to-end
    figures say who eats the cores; ``series`` keeps every sample for the soak scenario."""

    def __init__(self, stack: Stack, keep_series: bool = False) -> None:
        self.stack = stack
        self.pids = {**stack.pids, "load generator": os.getpid()}
        self.keep_series = keep_series
        self.series: list[dict[str, Any]] = []
        self.peak: dict[str, float] = {}
        self._cpu0 = {name: cpu_seconds(pid) for name, pid in self.pids.items()}
        self._cpu_before = {name: 0.0 for name in self.pids}  # CPU of earlier processes of a restarted service
        self.restarts = {name: 0 for name in self.pids}
        self._t0 = time.monotonic()
        self.cpu: dict[str, float] = {name: 0.0 for name in self.pids}

    def sample(self) -> dict[str, Any]:
        """One sample: seconds since start, RSS (MiB) and CPU seconds used since start, per process."""
        # anon: the RSS no file backs. The rest is pages of mapped files (chDB's 530 MB library in
        # the sink), bounded by their size and given back under pressure.
        row: dict[str, Any] = {"t": round(time.monotonic() - self._t0, 2), "rss_mib": {}, "anon_mib": {},
                               "cpu_s": {}, "pid": {}}
        if any(rss_kib(pid) == 0 for pid in self.pids.values()):
            self._follow_restarts()
        for name, pid in self.pids.items():
            mib = round(rss_kib(pid) / 1024, 1)
            used = self._cpu_before[name] + cpu_seconds(pid) - self._cpu0[name]
            self.peak[name] = max(self.peak.get(name, 0.0), mib)
            self.cpu[name] = max(self.cpu[name], used)  # a restarted child starts from 0: keep the most seen
            row["rss_mib"][name] = mib
            row["anon_mib"][name] = round(rss_kib(pid, "RssAnon") / 1024, 1)
            row["cpu_s"][name] = round(used, 2)
            row["pid"][name] = pid  # a new pid starts a new segment of the soak's fit (benchmarks/soak.py)
        if self.keep_series:
            self.series.append(row)
        return row

    def _follow_restarts(self) -> None:
        """Services restarted under new pids (the broker recycle restarts them all): sample those."""
        for name, pid in self.stack.find_pids().items():
            if self.pids.get(name) != pid:
                self._cpu_before[name] = self.cpu.get(name, 0.0)
                self._cpu0[name] = cpu_seconds(pid)
                self.restarts[name] = self.restarts.get(name, 0) + 1
                self.pids[name] = pid

    async def run(self, stop: asyncio.Event, every_s: float = 0.5) -> dict[str, Any]:
        """Sample until ``stop`` is set; the peaks and CPU seconds of the window."""
        while True:
            self.sample()
            if stop.is_set():
                break
            try:
                await asyncio.wait_for(stop.wait(), every_s)
            except TimeoutError:
                pass
        return self.summary()

    def summary(self) -> dict[str, Any]:
        """Peak RSS (services only) and CPU seconds per process over the window, with the window's length."""
        wall = time.monotonic() - self._t0
        return {"peak_rss_mib": {k: v for k, v in self.peak.items() if k != "load generator"},
                "cpu_seconds": {k: round(v, 1) for k, v in self.cpu.items()},
                "cpu_cores_used": {k: round(v / wall, 2) if wall else None for k, v in self.cpu.items()},
                "window_s": round(wall, 1)}
