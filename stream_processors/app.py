"""The faust application: configuration that is safe on Tansu and right on Apache Kafka."""

from __future__ import annotations

import faust

from gateledger.kafka import KafkaTarget, resolve
from gateledger.settings import Settings
from stream_processors.settings import ProcessorSettings


def create_app(settings: Settings | None = None, proc: ProcessorSettings | None = None,
               target: KafkaTarget | None = None) -> faust.App:
    """A configured (not yet started) faust app."""
    settings = settings or Settings()
    proc = proc or ProcessorSettings()
    kafka = settings.kafka
    target = target or resolve(kafka, settings.core)
    return faust.App(
        proc.app_id,
        broker=f"kafka://{target.bootstrap}",
        store="memory://",
        autodiscover=False,
        # faust always starts its web server: bind it to loopback explicitly.
        web_enabled=True,
        web_bind=proc.host,
        web_host=proc.host,
        web_port=proc.port,
        topic_partitions=kafka.partitions,
        topic_replication_factor=kafka.replication_factor,
        topic_allow_declare=True,
        consumer_auto_offset_reset="earliest",
        broker_session_timeout=kafka.session_timeout_ms / 1000,
        broker_heartbeat_interval=kafka.heartbeat_interval_ms / 1000,
        broker_rebalance_timeout=kafka.session_timeout_ms / 1000,
        # Transactions exist on Apache Kafka only (Tansu has no InitProducerId).
        processing_guarantee="exactly_once" if kafka.enable_idempotence and not target.tansu else "at_least_once",
        data_dir=str(settings.core.data_dir / "faust"),
    )
