"""Kafka plumbing shared by every stage: where the broker is, client configs, topics, true lag.

Tansu (the embedded broker) reports a wrong ``end_offsets()``; lag here is measured from the
high watermark that a real fetch returns, which is right on Tansu and on Apache Kafka.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import KafkaError, TopicAlreadyExistsError

from gateledger.settings import CoreSettings, KafkaSettings
from gateledger.stack.state import load_running
from gateledger.topics import TopicSpec, topic_specs

log = logging.getLogger(__name__)


class BrokerNotConfigured(RuntimeError):
    """No bootstrap servers configured and no embedded stack running."""


@dataclass(frozen=True)
class KafkaTarget:
    """A resolved broker: its address and whether it is Tansu (which needs workarounds)."""

    bootstrap: str
    tansu: bool
    topic_prefix: str


def resolve(kafka: KafkaSettings, core: CoreSettings) -> KafkaTarget:
    """The broker to use: configured servers, else the embedded stack's broker."""
    if kafka.bootstrap_servers:
        tansu = kafka.tansu_workarounds == "true"
        return KafkaTarget(kafka.bootstrap_servers, tansu, core.topic_prefix)
    state = load_running(core.data_dir)
    if state is None:
        raise BrokerNotConfigured(
            f"no Kafka broker: start the embedded stack with `gateledger up` (data dir {core.data_dir}) "
            "or set GATELEDGER_KAFKA_BOOTSTRAP_SERVERS"
        )
    return KafkaTarget(state.kafka_bootstrap, kafka.tansu_workarounds != "false", state.topic_prefix)


# Tansu holds every JoinGroup for half the session timeout (KafkaSettings.session_timeout_ms).
TANSU_SESSION_TIMEOUT_MS = 2000
KAFKA_SESSION_TIMEOUT_MS = 6000


def group_timeouts(kafka: KafkaSettings, target: KafkaTarget) -> tuple[int, int]:
    """(session timeout, heartbeat interval) in ms for consumer groups on this target."""
    default = TANSU_SESSION_TIMEOUT_MS if target.tansu else KAFKA_SESSION_TIMEOUT_MS
    session = kafka.session_timeout_ms or default
    return session, kafka.heartbeat_interval_ms or min(1000, session // 4)


def common_config(kafka: KafkaSettings, bootstrap: str) -> dict[str, Any]:
    """Connection settings shared by producers, consumers and admin clients."""
    cfg: dict[str, Any] = {
        "bootstrap_servers": bootstrap,
        "client_id": kafka.client_id,
        "security_protocol": kafka.security_protocol,
        "request_timeout_ms": kafka.request_timeout_ms,
    }
    if kafka.sasl_mechanism:
        cfg["sasl_mechanism"] = kafka.sasl_mechanism
        cfg["sasl_plain_username"] = kafka.sasl_username
        cfg["sasl_plain_password"] = kafka.sasl_password.get_secret_value() if kafka.sasl_password else None
    return cfg


def producer_config(kafka: KafkaSettings, bootstrap: str) -> dict[str, Any]:
    """Producer settings: acks=all so a send resolves only after the broker acknowledged."""
    cfg = common_config(kafka, bootstrap)
    cfg.update(
        acks="all" if kafka.acks == "all" else int(kafka.acks),
        enable_idempotence=kafka.enable_idempotence,
        compression_type=None if kafka.compression_type == "none" else kafka.compression_type,
        linger_ms=kafka.linger_ms,
        max_batch_size=kafka.max_batch_size,
    )
    return cfg


def make_producer(kafka: KafkaSettings, target: KafkaTarget, **overrides: Any) -> AIOKafkaProducer:
    """An (unstarted) aiokafka producer for the target."""
    cfg = producer_config(kafka, target.bootstrap)
    cfg.update(overrides)
    return AIOKafkaProducer(**cfg)


def make_consumer(kafka: KafkaSettings, target: KafkaTarget, *topics: str, **overrides: Any) -> AIOKafkaConsumer:
    """An (unstarted) aiokafka consumer; offsets are committed by the caller, never automatically."""
    cfg = common_config(kafka, target.bootstrap)
    session_ms, heartbeat_ms = group_timeouts(kafka, target)
    cfg.update(
        enable_auto_commit=False,
        # Never "latest": Tansu's end offsets are wrong, and a new group must not skip history.
        auto_offset_reset="earliest",
        session_timeout_ms=session_ms,
        heartbeat_interval_ms=heartbeat_ms,
        max_poll_interval_ms=kafka.max_poll_interval_ms,
    )
    cfg.update(overrides)
    return AIOKafkaConsumer(*topics, **cfg)


async def wait_for_broker(bootstrap: str, timeout_s: float = 20.0) -> None:
    """Block until the broker answers metadata requests."""
    deadline = asyncio.get_running_loop().time() + timeout_s
    last: Exception | None = None
    while asyncio.get_running_loop().time() < deadline:
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=3000)
        try:
            await admin.start()
            await admin.list_topics()
            return
        except (KafkaError, OSError) as exc:
            last = exc
            await asyncio.sleep(0.1)
        finally:
            await admin.close()
    raise TimeoutError(f"Kafka broker at {bootstrap} not ready after {timeout_s}s: {last}")


async def ensure_topics(kafka: KafkaSettings, bootstrap: str, specs: list[TopicSpec]) -> list[str]:
    """Create the topics that do not exist yet (never rely on auto-creation); returns those created."""
    admin = AIOKafkaAdminClient(**common_config(kafka, bootstrap))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        missing = [s for s in specs if s.name not in existing]
        if not missing:
            return []
        new = [NewTopic(s.name, s.partitions, s.replication_factor, topic_configs=s.config) for s in missing]
        try:
            await admin.create_topics(new)
        except TopicAlreadyExistsError:
            pass  # another process created them first
        return [s.name for s in missing]
    finally:
        await admin.close()


async def ensure_gateledger_topics(kafka: KafkaSettings, target: KafkaTarget) -> list[str]:
    """Create every gateledger topic for the target's prefix."""
    specs = topic_specs(target.topic_prefix, kafka.partitions, kafka.replication_factor)
    return await ensure_topics(kafka, target.bootstrap, specs)


@dataclass(frozen=True)
class PartitionLag:
    topic: str
    partition: int
    committed: int | None
    highwater: int

    @property
    def lag(self) -> int:
        return self.highwater - (self.committed or 0)


async def consumer_group_lag(kafka: KafkaSettings, bootstrap: str, group: str, topics: list[str]) -> list[PartitionLag]:
    """Lag of a consumer group over the given topics, from committed offsets and true high watermarks."""
    admin = AIOKafkaAdminClient(**common_config(kafka, bootstrap))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        topics = [t for t in topics if t in existing]
        if not topics:
            return []
        meta = await admin.describe_topics(topics)
        tps = [TopicPartition(t["topic"], p["partition"]) for t in meta for p in t["partitions"]]
        # Tansu drops the connection unless partitions are given explicitly.
        offsets = await admin.list_consumer_group_offsets(group, partitions=tps)
    finally:
        await admin.close()
    committed = {tp: (om.offset if om is not None and om.offset >= 0 else None) for tp, om in offsets.items()}
    high = await true_highwaters(kafka, bootstrap, tps)
    return [
        PartitionLag(tp.topic, tp.partition, committed.get(tp), high.get(tp, 0))
        for tp in sorted(tps, key=lambda x: (x.topic, x.partition))
    ]


async def true_highwaters(kafka: KafkaSettings, bootstrap: str, tps: list[TopicPartition]) -> dict[TopicPartition, int]:
    """High watermark of each partition as a fetch reports it (correct on Tansu, unlike end_offsets)."""
    if not tps:
        return {}
    consumer = AIOKafkaConsumer(
        **common_config(kafka, bootstrap),
        enable_auto_commit=False,
        group_id=None,
        max_partition_fetch_bytes=1024,
        fetch_max_wait_ms=50,
    )
    await consumer.start()
    try:
        consumer.assign(tps)
        # end_offsets is a lower bound on Tansu (base offset of the last batch + 1): fetching
        # from just below it returns the last batch and, with it, the true high watermark.
        approx = await consumer.end_offsets(tps)
        for tp in tps:
            consumer.seek(tp, max(approx.get(tp, 0) - 1, 0))
        result: dict[TopicPartition, int] = {}
        pending = {tp for tp in tps if approx.get(tp, 0) > 0}
        for tp in tps:
            if tp not in pending:
                result[tp] = 0
        deadline = asyncio.get_running_loop().time() + 10
        while pending and asyncio.get_running_loop().time() < deadline:
            await consumer.getmany(*pending, timeout_ms=200, max_records=1)
            for tp in list(pending):
                hw = consumer.highwater(tp)
                if hw is not None:
                    result[tp] = hw
                    pending.discard(tp)
        for tp in pending:
            result[tp] = approx.get(tp, 0)
        return result
    finally:
        await consumer.stop()

