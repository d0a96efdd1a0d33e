"""Stream processor settings (``GATELEDGER_PROCESSORS_*``).

Every window and timeout is measured in **event time** (the ``time`` of the events), except
``idle_advance_s``, ``source_idle_s`` and the batching knobs, which are processing time.
"""

from __future__ import annotations

from typing import Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict


class ProcessorSettings(BaseSettings):
    """The faust worker and its stages."""

    model_config = SettingsConfigDict(env_prefix="GATELEDGER_PROCESSORS_", extra="ignore")

    app_id: str = "gateledger-processors"
    # The worker's event loop: "uvloop" (libuv; the per-message scheduling of faust and aiokafka
    # is a large share of the worker's CPU) or "asyncio" (the standard library's).
    event_loop: Literal["uvloop", "asyncio"] = "uvloop"
    # faust-streaming's repaired Cython fast paths (its ``cython_optimizations`` setting, off by
    # default in 0.15): a stream takes a record already queued without awaiting the channel, and a
    # record is decoded once for all channels of its topic. Measured in docs/benchmarks.md (issue 18).
    faust_cython_optimizations: bool = True
    # faust's Monitor sensor: per-message statistics (several callbacks per record) for faust's own
    # /stats pages, which nothing here reads (the worker's metrics are Prometheus: telemetry.py).
    faust_monitor: bool = False
    # faust's web server (metrics, health) binds here; never 0.0.0.0 outside a container.
    host: str = "127.0.0.1"
    port: int = 6066

    # -- batching (processing time) --------------------------------------------------------------
    batch_max: int = Field(default=2000, ge=1)  # events per take() batch
    batch_within_s: float = Field(default=0.05, gt=0)  # longest wait to fill a batch

    # -- event-time progress ----------------------------------------------------------------------
    # The watermark of a partition trails its newest event time by this much (out-of-orderness).
    lateness_s: float = Field(default=5.0, ge=0)
    # A partition that received nothing for this long (processing time) lets its watermark follow
    # the clock from its newest event on, so open work still closes when traffic stops.
    # 0 disables it (pure event time: nothing closes until newer events arrive).
    idle_advance_s: float = Field(default=10.0, ge=0)
    tick_interval_s: float = Field(default=1.0, gt=0)  # how often idle partitions are checked
    # A tenant's watermark is the minimum over its sources (upstream source + event type) that
    # delivered within this long (processing time); a source quiet for longer stops holding it back.
    source_idle_s: float = Field(default=60.0, gt=0)

    # -- normalize ------------------------------------------------------------------------------
    # Obot request/response halves of one exchange wait this long for each other.
    mcp_merge_timeout_s: float = Field(default=60.0, gt=0)
    # An approved pre-check without expires_at is treated as expiring after this long.
    precheck_ttl_s: float = Field(default=300.0, gt=0)
    # Slack after expires_at before "no audit" becomes an unaudited-LLM-call finding.
    unaudited_grace_s: float = Field(default=30.0, ge=0)
    # An audit waits this long for its pre-check before it is an orphan.
    orphan_grace_s: float = Field(default=300.0, ge=0)
    # A row of AxonFlow's audit trail showing an LLM call the tap did not record becomes an LlmCall
    # this long after its time (None: the context retention, retention_s). A filled call cannot be
    # taken back, so it waits until the tap's own audit of it can no longer join: filling sooner
    # counts a call twice if the tap's record arrives later (a tap behind the trail by more).
    audit_gap_fill_s: float | None = Field(default=None, ge=0)

    # -- deduplication --------------------------------------------------------------------------
    # Event ids are remembered until the watermark passes their event time + this window.
    dedup_window_s: float = Field(default=24 * 3600.0, gt=0)
    # Granularity of expiry. None: a quarter of the window, an hour at most (common/timeutil.py).
    dedup_bucket_s: float | None = Field(default=None, gt=0)

    # -- correlation ----------------------------------------------------------------------------
    # An incomplete interaction is emitted this long after its first event.
    interaction_timeout_s: float = Field(default=300.0, gt=0)
    # No longer used: a complete interaction is emitted at once (kept so existing configs still load).
    interaction_settle_s: float = Field(default=2.0, ge=0)
    # How long emitted interactions, joined contexts and merged exchanges stay updatable by late
    # events (after their last event). Memory grows with traffic x this retention.
    retention_s: float = Field(default=24 * 3600.0, gt=0)

    # -- budgets ----------------------------------------------------------------------------------
    # Budget ledger entries and period states are kept this long after their period ended (event
    # time): restatements and late costs within it recompute the period; older ones are ignored by
    # the stream (ClickHouse and `budgets status` still have them).
    budget_retention_s: float = Field(default=7 * 86400.0, gt=0)
    # Where the budget backfill reads earlier spend from ClickHouse (stream_processors/budgets/
    # backfill.py): the embedded stack's sink query endpoint (`up` sets it: the sink owns chDB).
    # Empty: ClickHouse directly (GATELEDGER_CLICKHOUSE_*), unless that is chDB, then the topic only.
    clickhouse_query_url: str = ""

    # -- operations -----------------------------------------------------------------------------
    lag_poll_interval_s: float = Field(default=5.0, gt=0)
    # How often consumed offsets are committed (faust's default). Longer: fewer commits, more replay
    # after a crash (replays are harmless: docs/processors.md, "State and crash safety").
    commit_interval_s: float = Field(default=2.8, gt=0)
