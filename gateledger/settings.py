"""Typed settings, one class per component, all read from ``GATELEDGER_*`` environment variables.

Defaults run the embedded stack with no configuration: the broker address is discovered from
the running stack's state file, ClickHouse is chDB under the data directory.
"""

from __future__ import annotations

import os
from functools import cached_property
from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


def default_data_dir() -> Path:
    """Where the embedded stack keeps chDB data, checkpoints and its state file."""
    xdg = os.environ.get("XDG_DATA_HOME")
    base = Path(xdg) if xdg else Path.home() / ".local" / "share"
    return base / "gateledger"


def _config(prefix: str) -> SettingsConfigDict:
    return SettingsConfigDict(env_prefix=prefix, extra="ignore", validate_default=True)


class CoreSettings(BaseSettings):
    """Settings shared by every process."""

    model_config = _config("GATELEDGER_")

    data_dir: Path = Field(default_factory=default_data_dir)
    # Prefix for every topic name; tests use it to give each test a fresh topic set.
    topic_prefix: str = ""
    log_level: str = "INFO"

    @field_validator("data_dir")
    @classmethod
    def _absolute(cls, v: Path) -> Path:
        return v.expanduser().resolve()


class KafkaSettings(BaseSettings):
    """How to reach Kafka and how to produce to it."""

    model_config = _config("GATELEDGER_KAFKA_")

    # None: use the broker of the embedded stack (found through its state file).
    bootstrap_servers: str | None = None
    security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    sasl_mechanism: str | None = None
    sasl_username: str | None = None
    sasl_password: SecretStr | None = None
    client_id: str = "gateledger"
    acks: Literal["all", "1", "0"] = "all"
    # Tansu has no InitProducerId: idempotence is for real Kafka only (on in compose).
    enable_idempotence: bool = False
    compression_type: Literal["none", "gzip", "lz4", "snappy", "zstd"] = "lz4"
    linger_ms: int = 5
    max_batch_size: int = 256 * 1024
    request_timeout_ms: int = 15000
    # How long a producer may wait for a broker acknowledgement before the caller is told "unavailable".
    delivery_timeout_s: float = 10.0
    partitions: int = 4
    replication_factor: int = 1
    # Group membership. Tansu answers a JoinGroup no sooner than half the group's session timeout (its
    # join loop sleeps until then: tansu-broker/src/coordinator/group/administrator.rs; nothing like
    # group.initial.rebalance.delay.ms to set), so every consumer start and rebalance waits that long.
    # None: 2 s on Tansu (a 1 s join), 6 s elsewhere (Apache Kafka refuses sessions shorter than its
    # group.min.session.timeout.ms, 6 s by default). Use ``group_timeouts()`` (gateledger.kafka).
    session_timeout_ms: int | None = Field(default=None, gt=0)
    # None: a quarter of the session timeout, at most 1 s.
    heartbeat_interval_ms: int | None = Field(default=None, gt=0)
    max_poll_interval_ms: int = 300000
    # How long a fetch may wait at the broker for records (faust's own choice is 1.5 s). Tansu does not
    # answer a waiting fetch when records arrive: it looks again after half the remaining wait
    # (tansu-storage/src/service/fetch.rs), so a long wait delays every hop of the pipeline; and
    # aiokafka sends a seek's offset lookup only once the fetch in flight returned, so every worker
    # start (recovery seeks the stream partitions) waited out one whole fetch.
    fetch_max_wait_ms: int = Field(default=200, gt=0)
    # Tansu reports a wrong end offset; "auto" detects it, "true"/"false" force the workaround.
    tansu_workarounds: Literal["auto", "true", "false"] = "auto"


class ClickHouseSettings(BaseSettings):
    """Where ClickHouse lives and how the schema is laid out."""

    model_config = _config("GATELEDGER_CLICKHOUSE_")

    # None: chDB under <data_dir>/clickhouse. Otherwise chdb:///abs/path or http(s)://host:port.
    url: str | None = None
    database: str = "gateledger"
    username: str = "default"
    password: SecretStr = SecretStr("")
    # When set, migrations create Replicated* tables ON CLUSTER this name (one shard, N replicas).
    cluster: str | None = None
    # With a cluster of several shards: every data table becomes <name>_local (Replicated*, per
    # shard) plus <name> (Distributed, sharded by id), and inserts wait for every shard.
    sharded: bool = False
    # Retention: raw payloads shorter than metadata.
    ttl_raw_days: int = 30
    ttl_days: int = 395
    ttl_dead_letter_days: int = 90
    # Money and compliance records (cost_ledger, budget_alerts, findings): kept like accounting records.
    ttl_ledger_days: int = 2557
    # Materialized-view rollups (usage per minute, cost per day).
    ttl_rollup_days: int = 760
    connect_timeout_s: float = 10.0
    send_receive_timeout_s: float = 300.0

    def dsn(self, core: CoreSettings) -> str:
        """The DSN clickhouse-connect is given."""
        return self.url or f"chdb://{core.data_dir / 'clickhouse'}"

    def is_chdb(self, core: CoreSettings) -> bool:
        """True when the target is the in-process chDB engine."""
        return self.dsn(core).startswith("chdb:")


class StackSettings(BaseSettings):
    """The embedded stack started by ``gateledger up``."""

    model_config = _config("GATELEDGER_STACK_")

    host: str = "127.0.0.1"
    ingest_port: int = 8480
    # 0 picks free ports for the broker and internal endpoints.
    broker_port: int = 0
    sink_port: int = 0
    processors_port: int = 0
    restart_backoff_max_s: float = 30.0
    summary_interval_s: float = 10.0
    # A graceful stop waits this long for the processors and the sink to catch up before stopping
    # anyway; 0: as long as it takes (a second Ctrl-C stops at once). Raw events the sink had not
    # landed when the broker stops are lost (the re-drive starts from what ClickHouse holds).
    drain_timeout_s: float = 0.0
    # At start, raw events of interactions that landed in the previous run's last this-many seconds
    # are re-driven too: their later stages (cost rows, budget contributions) may not have landed.
    redrive_tail_s: float = 60.0
    # The memory-only broker never frees what it holds (docs/operations.md, "Memory of the embedded
    # broker"): it is recycled (drain, restart empty, re-drive from ClickHouse) once its resident
    # memory passes this many MiB (0: never for memory) or it has run this many hours (0: never for
    # time), but not before it has run min_uptime_s, and checked every check_s.
    broker_recycle_rss_mib: float = Field(default=1024.0, ge=0)
    broker_recycle_interval_h: float = Field(default=0.0, ge=0)
    broker_recycle_min_uptime_s: float = Field(default=600.0, ge=0)
    broker_recycle_check_s: float = Field(default=15.0, gt=0)
    # How long a recycle waits for the pipeline to drain before it restarts the broker anyway (what
    # the processors had not finished is re-driven); the sink must still land every accepted raw
    # event within land_timeout_s more, else the recycle is put off (retried at the next check) and
    # the ingest reopened.
    broker_recycle_drain_timeout_s: float = Field(default=120.0, gt=0)
    broker_recycle_land_timeout_s: float = Field(default=300.0, gt=0)
    # A recycle that drained fully carries the processors' state (their changelogs, compacted) to
    # the new broker (gateledger/stack/changelogs.py); false: they start empty behind the re-drive.
    broker_recycle_carry_state: bool = True
    # The embedded stack's processors hold their state on the Python heap and, as changelogs, in the
    # memory-only broker, so `up` gives them this window (GATELEDGER_PROCESSORS_RETENTION_S and
    # _DEDUP_WINDOW_S, unless those are set): 2 h of late evidence, 12x the longest join timeout,
    # and 7 days at half the maximum rate fit 4 GiB (docs/operations.md, docs/benchmarks-soak.md).
    processors_window_s: float = Field(default=2 * 3600.0, gt=0)

    @field_validator("host")
    @classmethod
    def _loopback_only(cls, v: str) -> str:
        if v not in ("127.0.0.1", "localhost", "::1"):
            raise ValueError("the embedded stack listens on loopback only")
        return v


class Settings:
    """Lazily built bundle of the component settings, read from the environment once."""

    @cached_property
    def core(self) -> CoreSettings:
        return CoreSettings()

    @cached_property
    def kafka(self) -> KafkaSettings:
        return KafkaSettings()

    @cached_property
    def clickhouse(self) -> ClickHouseSettings:
        return ClickHouseSettings()

    @cached_property
    def stack(self) -> StackSettings:
        return StackSettings()
