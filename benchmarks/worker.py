"""One real ``gateledger serve processors`` worker on a Tansu broker, as the processor and money
benchmarks run it: fill its input topics, start it, scrape its metrics until a benchmark's condition
holds, stop it."""

from __future__ import annotations

import asyncio
import contextlib
import os
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TypeVar

T = TypeVar("T")


def metric(text: str, name: str, **labels: str) -> float:
    """The sum of a Prometheus metric's samples (in exposition ``text``) whose labels include ``labels``."""
    total = 0.0
    for line in text.splitlines():
        if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


async def publish(bootstrap: str, prefix: str, messages: Iterable[tuple[str, bytes, bytes]]) -> None:
    """Send (physical topic, key, value) messages to the topics of ``prefix``; return once all are acked."""
    from gateledger.kafka import KafkaTarget, ensure_gateledger_topics, make_producer
    from gateledger.settings import KafkaSettings

    kafka = KafkaSettings(bootstrap_servers=bootstrap)
    target = KafkaTarget(bootstrap, True, prefix)
    await ensure_gateledger_topics(kafka, target)
    producer = make_producer(kafka, target, linger_ms=20, max_batch_size=512 * 1024)
    await producer.start()
    try:
        futures = [await producer.send(t, value=v, key=k) for t, k, v in messages]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


@contextlib.contextmanager
def broker(bootstrap: str | None = None) -> Iterator[tuple[str, bool]]:
    """(bootstrap, whether the broker is ours): ``bootstrap`` if given, else a Tansu started here."""
    if bootstrap is not None:
        yield bootstrap, False
        return
    from gateledger.stack.broker import TansuBroker

    own = TansuBroker()
    own.start()
    try:
        yield own.bootstrap, True
    finally:
        own.stop()


@contextlib.contextmanager
def worker(bootstrap: str, tag: str, *, own_broker: bool, files: dict[str, tuple[str, str]] | None = None,
           env: dict[str, str] | None = None) -> Iterator[tuple[int, subprocess.Popen[bytes], Path]]:
    """A ``gateledger serve processors`` process on the topics and app id ``tag`` (port, process, log).

    ``files``: file name -> (the setting that points at it, its text), written into the worker's data
    directory (``{"budgets.yaml": ("GATELEDGER_BUDGETS_FILE", BUDGETS)}``); ``env``: further settings.
    """
    from gateledger.net import free_port

    port = free_port()
    with tempfile.TemporaryDirectory() as data:
        child_env = dict(os.environ) | {
            "GATELEDGER_KAFKA_BOOTSTRAP_SERVERS": bootstrap,
            "GATELEDGER_KAFKA_TANSU_WORKAROUNDS": "true" if own_broker else
            os.environ.get("GATELEDGER_KAFKA_TANSU_WORKAROUNDS", "auto"),
            "GATELEDGER_TOPIC_PREFIX": f"{tag}.",
            "GATELEDGER_DATA_DIR": data,
            "GATELEDGER_MASKING_SALT": "bench",
            "GATELEDGER_PROCESSORS_APP_ID": tag,
            "GATELEDGER_PROCESSORS_PORT": str(port),
            "GATELEDGER_PROCESSORS_IDLE_ADVANCE_S": "0",
        }
        for name, (setting, text) in (files or {}).items():
            (Path(data) / name).write_text(text)
            child_env[setting] = str(Path(data) / name)
        child_env |= env or {}
        log = Path(data) / "worker.log"
        with open(log, "wb") as out:
            proc = subprocess.Popen([sys.executable, "-m", "gateledger_cli.main", "serve", "processors"],
                                    env=child_env, stdout=out, stderr=subprocess.STDOUT,
                                    start_new_session=True)
        try:
            yield port, proc, log
        finally:
            proc.terminate()
            try:
                proc.wait(20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def wait_healthy(url: str, proc: subprocess.Popen[bytes], deadline: float, log: Path) -> None:
    """Until the worker's /healthz answers 200; RuntimeError with its log if it dies or time runs out."""
    while True:
        if proc.poll() is not None or time.monotonic() > deadline:
            raise RuntimeError(f"worker did not start: {log.read_text(errors='replace')[-3000:]}")
        try:
            with urllib.request.urlopen(f"{url}/healthz", timeout=1) as resp:  # noqa: S310 (loopback)
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)


def measure(port: int, proc: subprocess.Popen[bytes], timeout_s: float, log: Path,
            done: Callable[[str, float, float], T | None], near: Callable[[str], bool] | None = None) -> T:
    """From "ready", scrape the worker's metrics until ``done(text, seconds, worker CPU seconds)``, both
    counted from "ready", gives a result.

    A scrape costs the worker a few ms (the whole registry rendered): every 0.25 s, or with ``near``
    once a second until ``near(text)`` holds and every 0.1 s after, so the polling neither slows the
    worker much nor adds much to the measured time.
    """
    from benchmarks.common import cpu_seconds

    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + timeout_s
    wait_healthy(url, proc, deadline, log)
    started, cpu0 = time.perf_counter(), cpu_seconds(proc.pid)
    while time.monotonic() < deadline:
        with urllib.request.urlopen(f"{url}/metrics", timeout=5) as resp:  # noqa: S310
            text = resp.read().decode()
        result = done(text, time.perf_counter() - started, cpu_seconds(proc.pid) - cpu0)
        if result is not None:
            return result
        time.sleep(0.25 if near is None else 0.1 if near(text) else 1.0)
    raise RuntimeError(f"worker did not finish in {timeout_s}s: {log.read_text(errors='replace')[-3000:]}")
