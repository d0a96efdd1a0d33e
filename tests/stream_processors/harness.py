"""Helpers for processor tests on the real broker: publish upstream records, run the worker, read outputs."""

from __future__ import annotations

import asyncio
import sys
import time
import urllib.request
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, TopicPartition

from gateledger import jsonutil
from gateledger.contracts.envelope import Envelope
from gateledger.kafka import (
    KafkaTarget, common_config, ensure_gateledger_topics, make_producer, resolve, true_highwaters,
)
from gateledger.masking import Masker
from gateledger.net import free_port
from gateledger.settings import Settings
from gateledger.topics import OUTPUT_TOPICS, Topic, topic_name
from producers.accept import get_format
from producers.accept import IngestContext, Published
from tests.conftest import Processes, subprocess_env

MASKER = Masker(salt=b"test-salt")
OUT_TOPICS: tuple[Topic, ...] = (*OUTPUT_TOPICS, Topic.DEAD_LETTERS)


def envelope(fmt: str, record: Any, *, tenant: str = "acme", received_at: datetime | None = None,
             delivery_id: str | None = None) -> Published:
    """One upstream record through the producers' format code, exactly as ingest would publish it."""
    ctx = IngestContext(masker=MASKER, tenant=tenant, delivery_id=delivery_id)
    if received_at is not None:
        ctx.received_at = received_at
    return get_format(fmt)(record, ctx)


async def publish(settings: Settings, items: Iterable[Published | tuple[str, bytes, bytes]]) -> None:
    """Publish envelopes (or raw (topic, key, value) triples) in order, waiting for every ack."""
    target = resolve(settings.kafka, settings.core)
    producer = make_producer(settings.kafka, target, linger_ms=0)
    await producer.start()
    try:
        futures = []
        for item in items:
            if isinstance(item, Published):
                env = item.envelope
                futures.append(await producer.send(
                    topic_name(item.topic, target.topic_prefix), key=item.key.encode(),
                    value=env.model_dump_json(exclude_none=True).encode()))
            else:
                topic, key, value = item
                futures.append(await producer.send(topic_name(topic, target.topic_prefix), key=key, value=value))
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def ensure_topics(settings: Settings) -> KafkaTarget:
    target = resolve(settings.kafka, settings.core)
    await ensure_gateledger_topics(settings.kafka, target)
    return target


@dataclass
class Outputs:
    """Every message on the output topics, and the collapsed view (max version per id) the sink keeps."""

    messages: dict[str, list[dict[str, Any]]] = field(default_factory=dict)

    def all(self, topic: Topic) -> list[dict[str, Any]]:
        return self.messages.get(str(topic), [])

    def final(self, topic: Topic) -> dict[str, dict[str, Any]]:
        """id -> the row with the highest version (what ReplacingMergeTree(version) keeps)."""
        out: dict[str, dict[str, Any]] = {}
        for row in self.all(topic):
            cur = out.get(row["id"])
            if cur is None or row["version"] >= cur["version"]:
                out[row["id"]] = row
        return out

    def count(self, topic: Topic) -> int:
        return len(self.all(topic))


async def read_outputs(settings: Settings, topics: Iterable[Topic] = OUT_TOPICS,
                       skip_invalid: bool = False) -> Outputs:
    """Everything currently on the output topics (read from the beginning up to the true end);
    ``skip_invalid``: leave out messages that are not JSON (a test's deliberately broken ones)."""
    target = resolve(settings.kafka, settings.core)
    names = {topic_name(t, target.topic_prefix): str(t) for t in topics}
    out = Outputs()
    for m in await read_messages(settings, list(names)):
        try:
            value = jsonutil.loads(m.value)
        except ValueError:
            if not skip_invalid:
                raise
            continue
        out.messages.setdefault(names[m.topic], []).append(value)
    return out


async def read_messages(settings: Settings, names: list[str]) -> list[Any]:
    """Every message (aiokafka ConsumerRecord) on the named physical topics, from the beginning up to the
    true end."""
    target = resolve(settings.kafka, settings.core)
    consumer = AIOKafkaConsumer(**common_config(settings.kafka, target.bootstrap), enable_auto_commit=False,
                                group_id=None, auto_offset_reset="earliest", fetch_max_wait_ms=100)
    await consumer.start()
    out: list[Any] = []
    try:
        tps = []
        for name in names:
            parts = consumer.partitions_for_topic(name)
            if parts is None:
                await consumer._client.force_metadata_update()  # noqa: SLF001
                parts = consumer.partitions_for_topic(name) or set()
            tps.extend(TopicPartition(name, p) for p in parts)
        ends = await true_highwaters(settings.kafka, target.bootstrap, tps)
        tps = [tp for tp in tps if ends.get(tp, 0) > 0]
        if not tps:
            return out
        consumer.assign(tps)
        await consumer.seek_to_beginning(*tps)
        pending = set(tps)
        while pending:
            batch = await consumer.getmany(*pending, timeout_ms=500, max_records=10000)
            for tp, msgs in batch.items():
                out.extend(msgs)
                if msgs and msgs[-1].offset + 1 >= ends[tp]:
                    pending.discard(tp)
    finally:
        await consumer.stop()
    return out


async def wait_outputs(settings: Settings, done: Any, timeout_s: float = 60.0) -> Outputs:
    """Poll the outputs until ``done(outputs)`` is true (or fail with what was seen)."""
    deadline = time.monotonic() + timeout_s
    out = Outputs()
    while time.monotonic() < deadline:
        out = await read_outputs(settings)
        if done(out):
            return out
        await asyncio.sleep(0.5)
    summary = {k: len(v) for k, v in out.messages.items()}
    raise AssertionError(f"outputs not as expected after {timeout_s}s: {summary}")


@dataclass
class Worker:
    """A processors worker subprocess (``gateledger serve processors``)."""

    processes: Processes
    env: dict[str, str]
    log: Path
    port: int
    proc: Any = None

    def start(self) -> Worker:
        self.proc = self.processes.start(
            [sys.executable, "-m", "gateledger_cli.main", "serve", "processors"],
            subprocess_env(self.env | {"GATELEDGER_PROCESSORS_PORT": str(self.port)}), self.log)
        return self

    def wait_ready(self, timeout_s: float = 60.0) -> None:
        deadline = time.monotonic() + timeout_s
        url = f"http://127.0.0.1:{self.port}/healthz"
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise AssertionError(f"processors exited with {self.proc.returncode}; log:\n{self.tail()}")
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310 (loopback)
                    if resp.status == 200:
                        return
            except OSError:
                pass
            time.sleep(0.2)
        raise AssertionError(f"processors not ready after {timeout_s}s; log:\n{self.tail()}")

    def metrics(self) -> str:
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/metrics", timeout=3) as resp:  # noqa: S310
            return resp.read().decode()

    def kill(self) -> None:
        import os
        import signal

        os.killpg(self.proc.pid, signal.SIGKILL)
        self.proc.wait()

    def tail(self, n: int = 60) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-n:])
        except OSError:
            return "(no log)"


def worker_env(gl_env: dict[str, str], **settings: Any) -> dict[str, str]:
    """The test's environment plus processor settings (short timeouts for tests)."""
    env = dict(gl_env)
    defaults = {"idle_advance_s": 1.0, "tick_interval_s": 0.2, "lateness_s": 1.0, "interaction_settle_s": 1.0,
                "batch_within_s": 0.05}
    for k, v in (defaults | settings).items():
        env[f"GATELEDGER_PROCESSORS_{k.upper()}"] = str(v)
    return env


def start_worker(processes: Processes, gl_env: dict[str, str], tmp_path: Path, name: str = "proc",
                 **settings: Any) -> Worker:
    """Start a processors worker and wait until it is ready."""
    w = Worker(processes, worker_env(gl_env, **settings), tmp_path / f"{name}.log", free_port())
    w.start()
    w.wait_ready()
    return w


def envelope_bytes(env: Envelope) -> bytes:
    return env.model_dump_json(exclude_none=True).encode()
