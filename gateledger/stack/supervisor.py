"""``gateledger up``: the embedded stack under one supervisor.

Starts, in order: the Tansu broker, topics, the sink (which owns chDB, runs migrations and answers
queries), the re-drive of raw events whose processing never landed (gateledger/stack/redrive.py),
the stream processors, the ingest service and optionally the demo simulator. Restarts a crashed
service with backoff. The broker is memory-only: if it dies, every service is stopped, the broker
restarted on the same port and the services started again behind a new re-drive, so what had
landed in ClickHouse goes through again. Because the broker never frees memory, it is also recycled
on a schedule (its RSS past a bound, or every N hours; SIGUSR2 asks for one now): the ingest
refuses records, the pipeline drains, and once every accepted raw event has landed the same
restart happens (gateledger/stack/recycle.py). SIGINT/SIGTERM drains in pipeline order
(gateledger/stack/drain.py) and stops everything in reverse order; a second one stops at once.
Children die with the supervisor, and a stale run's leftovers are cleared (gateledger/stack/orphans.py).
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
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TextIO

from gateledger.clickhouse.access import StackQuerier
from gateledger.clock import utcnow
from gateledger.kafka import KafkaTarget, ensure_gateledger_topics, wait_for_broker
from gateledger.net import free_port
from gateledger.retry import Backoff
from gateledger.settings import Settings
from gateledger.stack import orphans
from gateledger.stack import state as stack_state
from gateledger.stack.broker import TansuBroker
from gateledger.stack.budget_gate import BudgetGate, budgets_restored
from gateledger.stack import changelogs
from gateledger.stack.drain import Groups, drain
from gateledger.stack.recycle import RecycleSchedule, raw_events_landed, rss_mib
from gateledger.stack.redrive import redrive
from gateledger.stack.service import Service, StackError, wait_healthy

log = logging.getLogger(__name__)
# A crashed service restarts after this, doubling with each crash in a row up to restart_backoff_max_s.
RESTART_AFTER_S = 0.5


@dataclass
class DurabilityPlan:
    """What the supervisor needs from the stages (which the core may not import): passed in by the CLI."""

    # consumer group -> topics, for the processors (raw topics; the later stages' topics) and for
    # the sink (graceful drain)
    processors: Groups
    sink: Groups
    # how far back (event time) the re-drive looks: the processors' retention window
    redrive_window_s: float
    drain_timeout_s: float = 0.0  # 0: no limit
    stages: Groups | None = None
    budget_gate: BudgetGate | None = None  # wait for budgets' spend before the ingest opens


def _enforcement_caught_up(health: object) -> bool:
    enforcement = health.get("enforcement") if isinstance(health, dict) else None
    return not isinstance(enforcement, dict) or enforcement.get("caught_up", True) is not False


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
        plan: DurabilityPlan | None = None,
    ) -> None:
        self.settings = settings
        self.demo = demo
        self.demo_args = demo_args or []
        self.duration_s = duration_s
        self.out = out
        self.services: list[Service] = []
        self.broker: TansuBroker | None = None
        self.stop_event = asyncio.Event()
        self.abort_event = asyncio.Event()  # a second Ctrl-C: stop at once, no drain
        self.state: stack_state.StackState | None = None
        self._lock_fd: int | None = None
        self._summary = summary
        self.plan = plan
        self._env: dict[str, str] = {}
        self._ports: dict[str, int] = {}
        self.broker_restarts = 0
        self.broker_recycles = 0
        self._broker_since = utcnow()
        self._broker_started = time.monotonic()
        self._recycle = RecycleSchedule.of(settings.stack)
        self._next_recycle_check = 0.0
        self._recycle_requested = False  # SIGUSR2: recycle the broker now

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
        # We hold the lock, so no live supervisor owns this data dir: whatever a killed one left
        # running (holding chDB's lock or the ingest port) is stopped now.
        stack = self.settings.stack
        orphans.clear_stale(data_dir, self._print, ports={"ingest": (stack.host, stack.ingest_port),
                                                          "broker": (stack.host, stack.broker_port)})
        if (data_dir / stack_state.STATE_FILE).exists():
            stack_state.remove(data_dir)
        for name, port in (("ingest", stack.ingest_port), ("broker", stack.broker_port),
                           ("sink", stack.sink_port), ("processors", stack.processors_port)):
            holder = orphans.port_holder(stack.host, port) if port else None
            if holder:
                raise StackError(f"the {name} port {stack.host}:{port} is in use by pid {holder} "
                                 f"({orphans.describe(holder)}); stop it or set GATELEDGER_STACK_{name.upper()}_PORT")

    def _release_lock(self) -> None:
        if self._lock_fd is not None:
            os.close(self._lock_fd)
            self._lock_fd = None

    def _print(self, text: str = "") -> None:
        print(text, file=self.out, flush=True)

    def _save_pids(self) -> None:
        children = {s.name: s.process.pid for s in self.services if s.running() and s.process is not None}
        if self.broker is not None and self.broker.process is not None and self.broker.alive():
            children["broker"] = self.broker.process.pid
        orphans.save(self.settings.core.data_dir, orphans.StackPids(supervisor=os.getpid(), children=children))

    def _on_signal(self) -> None:
        if self.stop_event.is_set():
            self._print("second stop signal: stopping at once (the next start re-drives what did not land)")
            self.abort_event.set()
        self.stop_event.set()

    def _on_recycle_signal(self) -> None:
        self._recycle_requested = True
        self._next_recycle_check = 0.0

    async def run(self) -> int:
        """Start everything, supervise, stop; returns the exit code."""
        core = self.settings.core
        try:
            self._acquire_lock(core.data_dir)
        except StackError as exc:
            self._print(f"error: {exc}")
            return 1
        logs = core.data_dir / "logs"
        logs.mkdir(parents=True, exist_ok=True)
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, self._on_signal)
        loop.add_signal_handler(signal.SIGUSR2, self._on_recycle_signal)
        code = 0
        try:
            await self._start(logs)
            code = await self._supervise(logs)
        except StackError as exc:
            self._print(f"error: {exc}")
            code = 1
        finally:
            await self._shutdown()
            for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGUSR2):
                loop.remove_signal_handler(sig)
            self._release_lock()
        return code

    async def _start_broker(self, logs: Path) -> None:
        stack, kafka = self.settings.stack, self.settings.kafka
        port = self.broker.port if self.broker is not None else stack.broker_port
        self._broker_since = utcnow()
        self.broker = TansuBroker(port, stack.host, log_path=logs / "broker.log", orphan_proof=True)
        self.broker.start()
        self._save_pids()
        await wait_for_broker(self.broker.bootstrap)
        target = KafkaTarget(self.broker.bootstrap, True, self.settings.core.topic_prefix)
        await ensure_gateledger_topics(kafka, target)

    def _plan_services(self, logs: Path) -> list[Service]:
        core, stack = self.settings.core, self.settings.stack
        host = stack.host
        assert self.broker is not None
        if not self._ports:  # chosen once: a restart after a broker crash keeps every address
            self._ports = {"sink": stack.sink_port or free_port(host),
                           "processors": stack.processors_port or free_port(host),
                           "ingest": stack.ingest_port or free_port(host), "notifier": free_port(host)}
        p = self._ports
        env = dict(os.environ)
        env.update(
            GATELEDGER_DATA_DIR=str(core.data_dir),
            GATELEDGER_TOPIC_PREFIX=core.topic_prefix,
            GATELEDGER_KAFKA_BOOTSTRAP_SERVERS=self.broker.bootstrap,
            GATELEDGER_KAFKA_TANSU_WORKAROUNDS="true",
            GATELEDGER_SINK_HOST=host,
            GATELEDGER_SINK_PORT=str(p["sink"]),
            # The sink's batch log from an earlier broker names offsets that broker took with it.
            GATELEDGER_SINK_BATCH_LOG_SINCE=self._broker_since.isoformat(),
            GATELEDGER_PROCESSORS_HOST=host,
            GATELEDGER_PROCESSORS_PORT=str(p["processors"]),
            # Budget backfill reads earlier spend from ClickHouse through the sink (it owns chDB).
            GATELEDGER_PROCESSORS_CLICKHOUSE_QUERY_URL=f"http://{host}:{p['sink']}",
            GATELEDGER_INGEST_HOST=host,
            GATELEDGER_INGEST_PORT=str(p["ingest"]),
            GATELEDGER_NOTIFIER_HOST=host,
            GATELEDGER_NOTIFIER_PORT=str(p["notifier"]),
        )
        self._env = env
        cli = [sys.executable, "-m", "gateledger_cli.main"]
        url = {name: f"http://{host}:{port}" for name, port in p.items()}
        plan = [
            Service("sink", [*cli, "serve", "sink"], env, f"{url['sink']}/healthz", logs / "sink.log"),
            Service("processors", [*cli, "serve", "processors"], env, f"{url['processors']}/healthz",
                    logs / "processors.log"),
            Service("ingest", [*cli, "serve", "ingest"], env, f"{url['ingest']}/healthz", logs / "ingest.log"),
            # Budget alerts -> webhooks (GATELEDGER_NOTIFIER_WEBHOOKS); with none configured it only consumes.
            Service("notifier", [*cli, "serve", "notifier"], env, f"{url['notifier']}/healthz", logs / "notifier.log"),
        ]
        if env.get("GATELEDGER_OBOT_URL"):
            # The Obot audit API poller runs only when an Obot installation is configured.
            plan.append(Service("poller", [*cli, "serve", "poller"], env, None, logs / "poller.log"))
        if env.get("GATELEDGER_AXONFLOW_URL"):
            # AxonFlow's audit trail, reconciled with the tap, only when an AxonFlow is configured.
            plan.append(Service("axonflow-poller", [*cli, "serve", "axonflow-poller"], env, None,
                                logs / "axonflow-poller.log"))
        return plan

    async def _start_services(self, logs: Path) -> None:
        """The sink, the re-drive, then every other service, each healthy before the next."""
        for svc in self._plan_services(logs):
            self.services.append(svc)
            await svc.start()
            self._save_pids()
            if svc.health_url:
                # The ingest is ready once its budget enforcement view read budget.state to the end.
                ready = _enforcement_caught_up if svc.name == "ingest" else None
                await wait_healthy(svc.health_url, svc, timeout_s=90, ready=ready)
            if svc.name == "processors" and self.plan is not None and self.plan.budget_gate is not None:
                assert self.broker is not None
                await budgets_restored(self.settings.kafka, self.broker.bootstrap, self.plan.budget_gate,
                                       self._print)
            if svc.name == "sink":
                await self._redrive(svc.health_url.rsplit("/", 1)[0] if svc.health_url else "")
        self._broker_started = time.monotonic()  # the recycle schedule counts from a serving stack

    async def _redrive(self, sink_url: str) -> None:
        if self.plan is None or self.broker is None:
            return
        target = KafkaTarget(self.broker.bootstrap, True, self.settings.core.topic_prefix)
        querier = StackQuerier(sink_url, data_dir=self.settings.core.data_dir)
        try:
            await redrive(querier.run_async, self.settings.kafka, target, database=self.settings.clickhouse.database,
                          window_s=self.plan.redrive_window_s, progress=self._print,
                          tail_s=self.settings.stack.redrive_tail_s)
        except Exception as exc:  # the stack still starts: what was not re-driven stays in ClickHouse
            self._print(f"warning: re-drive from ClickHouse failed ({exc}); raw events not yet processed stay "
                        "unprocessed until the next start")

    async def _start(self, logs: Path) -> None:
        core = self.settings.core
        await self._start_broker(logs)
        await self._start_services(logs)
        assert self.broker is not None
        host, p = self.settings.stack.host, self._ports
        self.state = stack_state.started_now(
            data_dir=core.data_dir,
            topic_prefix=core.topic_prefix,
            kafka_bootstrap=self.broker.bootstrap,
            ingest_url=f"http://{host}:{p['ingest']}",
            sink_url=f"http://{host}:{p['sink']}",
            processors_url=f"http://{host}:{p['processors']}",
            clickhouse_dsn=self.settings.clickhouse.dsn(core),
        )
        self.state.save()
        self._banner()
        if self.demo:
            cli = [sys.executable, "-m", "gateledger_cli.main"]
            demo = Service("demo", [*cli, "simulate", "--target", self.state.ingest_url, *self.demo_args],
                           self._env, None, logs / "demo.log", restart=False)
            self.services.append(demo)
            await demo.start()
            self._save_pids()
            self._print(f"  demo traffic     simulator -> {self.state.ingest_url} (log: {demo.log_path})")
        self._print()

    async def _restart_after_broker_crash(self, logs: Path) -> None:
        """The broker died with every topic: restart it and the services behind a new re-drive."""
        self.broker_restarts += 1
        self._print("the Kafka broker exited (its topics were in memory): restarting it and the services; "
                    "raw events that had landed in ClickHouse are re-driven")
        await self._restart_all(logs)
        self._print("stack restarted after the broker crash")

    async def _restart_all(self, logs: Path, carry_state: bool = False) -> None:
        """Stop the services (not the demo traffic), restart the broker empty, start them behind a re-drive.

        ``carry_state``: the pipeline drained fully, so the processors' changelogs are carried to the
        new broker (gateledger/stack/changelogs.py)."""
        keep = [s for s in self.services if s.name == "demo"]
        for svc in reversed([s for s in self.services if s.name != "demo"]):
            await svc.stop(timeout_s=5)
        self.services = keep
        kafka, core = self.settings.kafka, self.settings.core
        saved = None
        if carry_state and self.broker is not None:
            saved = await changelogs.saved(kafka, self.broker.bootstrap, core.topic_prefix, core.data_dir, self._print)
        if self.broker is not None:
            self.broker.stop()
        await self._start_broker(logs)
        if saved is not None and self.broker is not None:
            await changelogs.restored(kafka, KafkaTarget(self.broker.bootstrap, True, core.topic_prefix), saved,
                                      self._print)
        await self._start_services(logs)
        self._save_pids()

    async def _maybe_recycle(self, logs: Path, now: float) -> None:
        """Recycle the broker when the schedule says so (gateledger/stack/recycle.py)."""
        if now < self._next_recycle_check or self.broker is None or self.broker.process is None:
            return
        self._next_recycle_check = now + self.settings.stack.broker_recycle_check_s
        reason = self._recycle.due(rss_mib(self.broker.process.pid), now - self._broker_started)
        if self._recycle_requested:
            reason = "asked for (SIGUSR2)"
        if reason is None:
            return
        if await self._recycle_broker(logs, reason):
            self._recycle_requested = False
        else:
            # Put off (the sink is behind): the ingest stays open at least this long before the next
            # attempt refuses it again (measured: a sink far behind otherwise keeps it refused).
            self._next_recycle_check = time.monotonic() + self.settings.stack.broker_recycle_land_timeout_s

    async def _recycle_broker(self, logs: Path, reason: str) -> bool:
        """Drain, restart the broker empty, re-drive, resume; False (ingest reopened) when the sink
        could not land every accepted raw event, so nothing accepted is lost."""
        if self.plan is None or self.broker is None:
            return False
        stack = self.settings.stack
        by_name = {s.name: s for s in self.services}
        self._print(f"recycling the Kafka broker: {reason}; ingest answers 503 + Retry-After while the "
                    "pipeline drains, then the broker restarts empty and ClickHouse re-drives")
        if "ingest" in by_name:
            by_name["ingest"].signal(signal.SIGUSR1)
        drained = False
        try:
            drained = await drain(self.settings.kafka, self.broker.bootstrap, self.plan.processors, self.plan.sink,
                                  self._print, stack.broker_recycle_drain_timeout_s, stages=self.plan.stages)
            raw = sorted({t for topics in self.plan.processors.values() for t in topics})
            landed = await raw_events_landed(self.settings.kafka, self.broker.bootstrap, self.plan.sink, raw,
                                             self._print, stack.broker_recycle_land_timeout_s)
        except Exception as exc:  # the broker is not touched: nothing is lost, the recycle is retried later
            self._print(f"  recycle: drain failed ({exc})")
            landed = False
        if not landed:
            self._print("  recycle put off: reopening the ingest")
            if "ingest" in by_name:
                ingest = by_name["ingest"]
                await ingest.stop(timeout_s=20)
                await ingest.start()
                if ingest.health_url:
                    await wait_healthy(ingest.health_url, ingest, timeout_s=90, ready=_enforcement_caught_up)
                self._save_pids()
            return False
        self.broker_recycles += 1
        await self._restart_all(logs, carry_state=drained and stack.broker_recycle_carry_state)
        self._print(f"broker recycled ({self.broker_recycles} so far); the stack is accepting records again")
        return True

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

    async def _supervise(self, logs: Path) -> int:
        stack = self.settings.stack
        started = time.monotonic()
        next_summary = started + stack.summary_interval_s
        while not self.stop_event.is_set():
            if self.broker is None or not self.broker.alive():
                await self._restart_after_broker_crash(logs)
                continue
            now = time.monotonic()
            for svc in self.services:
                if svc.running():
                    if now - svc.started_at > 60:
                        svc.crashes = 0
                    continue
                if svc.process is not None and svc.process.returncode is not None and svc.next_start == 0.0:
                    svc.exit_codes.append(svc.process.returncode)
                    if not svc.restart:
                        if svc.name == "demo" and svc.process.returncode == 0:
                            self._print("demo traffic finished")
                        svc.process = None
                        continue
                    svc.crashes += 1
                    wait = Backoff(RESTART_AFTER_S, stack.restart_backoff_max_s).delay(svc.crashes)
                    svc.next_start = now + wait
                    self._print(f"{svc.name} exited with code {svc.process.returncode}; restarting in {wait:.1f}s")
                elif svc.next_start and now >= svc.next_start:
                    svc.next_start = 0.0
                    svc.restarts += 1
                    await svc.start()
                    self._save_pids()
            if self.duration_s is not None and now - started >= self.duration_s:
                return 0
            await self._maybe_recycle(logs, now)
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
            # Bounded: this loop also restarts crashed services and recycles the broker, and a sink
            # that stops answering would otherwise hold it for the query's own timeout (10 min).
            text = await asyncio.wait_for(self._summary(self.state.sink_url), 30)
        except Exception as exc:  # a summary must never take the stack down
            text = f"(summary unavailable: {exc})"
        self._print(("final summary\n" if final else "") + text)

    async def _shutdown(self) -> None:
        by_name = {s.name: s for s in self.services}
        if self.state is not None:
            if "demo" in by_name:
                await by_name["demo"].stop()
            await self._drain(by_name)
            await self._print_summary(final=True)
        fast = self.abort_event.is_set()
        for svc in reversed(self.services):
            await svc.stop(timeout_s=2 if fast else 20)
        if self.broker is not None:
            self.broker.stop()
        stack_state.remove(self.settings.core.data_dir)
        orphans.remove(self.settings.core.data_dir)
        if self.state is not None:
            self._print("gateledger stopped")

    async def _drain(self, by_name: dict[str, Service]) -> None:
        """Ingest refuses new records (503), the processors and then the sink catch up (see drain.py)."""
        if self.plan is None or self.broker is None or not self.broker.alive() or self.abort_event.is_set():
            return
        if "ingest" in by_name:
            by_name["ingest"].signal(signal.SIGUSR1)
        self._print("stopping: ingest answers 503 + Retry-After; draining what it accepted "
                    "(Ctrl-C again to stop at once)")
        started = time.monotonic()
        job = asyncio.ensure_future(drain(self.settings.kafka, self.broker.bootstrap,
                                          self.plan.processors, self.plan.sink, self._print,
                                          self.plan.drain_timeout_s, stages=self.plan.stages))
        abort = asyncio.ensure_future(self.abort_event.wait())
        try:
            await asyncio.wait({job, abort}, return_when=asyncio.FIRST_COMPLETED)
        finally:
            abort.cancel()
        if not job.done():
            job.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await job
            return
        try:
            if job.result():
                self._print(f"  drain: done in {time.monotonic() - started:.1f}s")
        except Exception as exc:  # stopping must not fail: the next start re-drives
            self._print(f"  drain failed ({exc}); stopping anyway (the next start re-drives)")
