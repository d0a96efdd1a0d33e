"""Sink settings (``GATELEDGER_SINK_*``)."""

from __future__ import annotations

from datetime import datetime

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class SinkSettings(BaseSettings):
    """How the ClickHouse sink batches, retries and serves queries."""

    model_config = SettingsConfigDict(env_prefix="GATELEDGER_SINK_", extra="ignore")

    group_id: str = "gateledger-sink"
    # A batch is flushed at this many rows (or bytes) or after this long, whichever comes first.
    # Defaults chosen by measurement (docs/sink.md, `python -m benchmarks.sink batch-sizes`).
    batch_max_rows: int = Field(default=10000, ge=1)
    batch_max_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    batch_max_wait_ms: int = Field(default=1000, ge=1)
    # Backpressure: stop fetching while this much waits for ClickHouse (bounds the sink's memory).
    max_buffered_rows: int = Field(default=200000, ge=1)
    max_buffered_bytes: int = Field(default=256 * 1024 * 1024, ge=1024)
    fetch_max_records: int = Field(default=10000, ge=1)
    # Retries of failing inserts: exponential backoff; forever while ClickHouse is unavailable
    # (nothing may be dropped), at most this many attempts in a row for an error of no known kind,
    # after which the rows it follows are dead-lettered (clickhouse_error) and the partition moves on.
    retry_backoff_initial_s: float = 0.2
    retry_backoff_max_s: float = 10.0
    unknown_error_attempts: int = Field(default=5, ge=1)
    # On shutdown, how long buffered rows may take to land before the sink gives up (they are not
    # committed, so the next run lands them).
    drain_timeout_s: float = 30.0
    # Concurrent inserts against a ClickHouse server (one client each); chDB always uses one.
    insert_concurrency: int = Field(default=2, ge=1)
    # Where the sink serves /metrics, /healthz and (on chDB) the query endpoint. 0 = pick a free port.
    host: str = "127.0.0.1"
    port: int = 0
    # The query endpoint (chDB only; docs/operations.md "Query endpoint"): per-query limits, and host
    # names besides the loopback ones a client may put in the Host header (comma-separated).
    query_timeout_s: float = Field(default=60.0, gt=0)
    query_max_memory_bytes: int = Field(default=2 * 1024**3, ge=16 * 1024 * 1024)
    query_allowed_hosts: str = ""
    # Which topics to consume: "all", or a comma-separated list of logical topic names.
    topics: str = "all"
    # On a ClickHouse server: apply the analyst role and per-tenant row policies at start-up
    # (sinks/clickhouse/server_ddl); tenants given here get a role of their own.
    apply_server_ddl: bool = True
    analyst_tenants: str = ""
    # Batch-log entries recorded before this moment are ignored: their offsets belong to an earlier
    # broker whose topics are gone (`gateledger up` sets it to its memory-only broker's start, so a
    # new broker's offsets, which begin again at 0, are never pinned to a dead broker's ranges).
    batch_log_since: datetime | None = None
    # A login for dashboards and analysts holding gateledger_analyst (all tenants, read-only); created
    # or, on every apply, given this password (so rotating it is a restart). Empty: no login created.
    analyst_user: str = ""
    analyst_password: SecretStr = SecretStr("")
