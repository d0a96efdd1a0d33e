"""Sink settings (``GATELEDGER_SINK_*``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class SinkSettings(BaseSettings):
    """How the ClickHouse sink batches, retries and serves queries."""

    model_config = SettingsConfigDict(env_prefix="GATELEDGER_SINK_", extra="ignore")

    group_id: str = "gateledger-sink"
    # A batch is flushed at this many rows or after this long, whichever comes first.
    batch_max_rows: int = 10000
    batch_max_wait_ms: int = 500
    # Backpressure: stop fetching while this many rows wait for ClickHouse.
    max_buffered_rows: int = 100000
    fetch_max_records: int = 5000
    # Retries of failing inserts: exponential backoff, forever (nothing may be dropped).
    retry_backoff_initial_s: float = 0.2
    retry_backoff_max_s: float = 10.0
    # Where the sink serves /metrics, /healthz and (on chDB) the query endpoint. 0 = pick a free port.
    host: str = "127.0.0.1"
    port: int = 0
    # Which topics to consume: "all", or a comma-separated list of logical topic names.
    topics: str = "all"
