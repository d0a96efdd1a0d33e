"""The faust application: configuration that is safe on Tansu and right on Apache Kafka, plus the stages."""

from __future__ import annotations

from typing import Any

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateledger.clock import Clock, utcnow
from gateledger.kafka import KafkaTarget, group_timeouts, resolve
from gateledger.masking import Masker, masking_salt
from gateledger.settings import KafkaSettings, Settings
from stream_processors import telemetry
from stream_processors.pipeline import StageContext, register_all
from stream_processors.recovery import OrderedRecoveryTableManager
from stream_processors.runtime import consumer_progress, is_ready
from stream_processors.settings import ProcessorSettings
from stream_processors.state_size import StateSizer, memory_limit_bytes
from stream_processors.tansu import GateledgerApp


def broker_credentials(kafka: KafkaSettings) -> Any:
    """faust credentials matching the Kafka settings the other services use (None: plaintext)."""
    import ssl

    import faust

    context = ssl.create_default_context() if kafka.security_protocol.endswith("SSL") else None
    if kafka.sasl_mechanism:
        return faust.SASLCredentials(
            username=kafka.sasl_username,
            password=kafka.sasl_password.get_secret_value() if kafka.sasl_password else None,
            mechanism=kafka.sasl_mechanism, ssl_context=context)
    return faust.SSLCredentials(context) if context else None


def create_app(settings: Settings | None = None, proc: ProcessorSettings | None = None,
               target: KafkaTarget | None = None, clock: Clock = utcnow,
               stages: list[str] | None = None) -> GateledgerApp:
    """A configured (not yet started) faust app with every stage registered."""
    settings = settings or Settings()
    proc = proc or ProcessorSettings()
    kafka = settings.kafka
    target = target or resolve(kafka, settings.core)
    session_ms, heartbeat_ms = group_timeouts(kafka, target)
    datadir = settings.core.data_dir / "faust" / proc.app_id
    datadir.parent.mkdir(parents=True, exist_ok=True)  # faust creates only the last level
    app = GateledgerApp(
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
        broker_session_timeout=session_ms / 1000,
        broker_heartbeat_interval=heartbeat_ms / 1000,
        broker_rebalance_timeout=session_ms / 1000,
        broker_commit_interval=proc.commit_interval_s,
        # Exactly-once in effect comes from deterministic ids + the flush order of runtime.py, not
        # from faust's transactions: faust derives transactional ids from destination partitions and
        # cannot look up output topics the worker does not consume (docs/operations.md).
        processing_guarantee="at_least_once",
        producer_compression_type=None if kafka.compression_type == "none" else kafka.compression_type,
        producer_linger=kafka.linger_ms / 1000,
        # faust's default is aiokafka's 16 KiB: a burst of small records then goes out in many requests.
        producer_max_batch_size=kafka.max_batch_size,
        producer_acks=-1,
        # faust's setting is "datadir"; without it faust writes <app id>-data into the working
        # directory (read-only in the container).
        datadir=str(datadir),
        broker_credentials=broker_credentials(kafka),
        # faust's own completion step can drop fetched records for good (stream_processors/recovery.py).
        TableManager=OrderedRecoveryTableManager,
        cython_optimizations=proc.faust_cython_optimizations,
    )
    app.gateledger_monitor = proc.faust_monitor
    app.gateledger_kafka = kafka
    app.gateledger_bootstrap = target.bootstrap
    app.gateledger_tansu = target.tansu
    masker = Masker(salt=masking_salt(settings.core.data_dir))
    ctx = StageContext(settings=settings, proc=proc, target=target, clock=clock, masker=masker)
    runners = register_all(app, ctx)
    app.gateledger_runners = runners  # type: ignore[attr-defined]
    sizers: dict[str, StateSizer] = {}
    telemetry.MEMORY_LIMIT.set(memory_limit_bytes())

    @app.page("/metrics")
    async def metrics(self: Any, request: Any) -> Any:
        return self.bytes(generate_latest(), content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    async def healthz(self: Any, request: Any) -> Any:
        ready = is_ready(app)
        return self.json({"ok": ready, "rebalancing": bool(app.rebalancing)}, status=200 if ready else 503)

    @app.timer(proc.lag_poll_interval_s, name="gateledger-lag")
    async def lag() -> None:
        consumer_progress(app, runners.values())
        for name, runner in runners.items():
            telemetry.STATE_ENTRIES.labels(table=name).set(runner.entries())
            sizers.setdefault(name, StateSizer(name)).step(runner.store())

    return app

