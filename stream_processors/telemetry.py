"""Prometheus metrics of the stream processors, named once here (the dashboards use these names)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

EVENTS_IN = Counter("gateledger_processor_events_in_total", "Messages consumed, per stage.", ["stage"])
EVENTS_OUT = Counter(
    "gateledger_processor_events_out_total", "Messages produced, per stage and topic.", ["stage", "topic"]
)
DEAD_LETTERS = Counter(
    "gateledger_processor_dead_letters_total", "Events dead-lettered, per stage and reason.", ["stage", "reason"]
)
DUPLICATES = Counter(
    "gateledger_processor_duplicates_total", "Events dropped as duplicates (same event id), per stage.", ["stage"]
)
SKIPPED = Counter(
    "gateledger_processor_events_skipped_total",
    "Valid events with no typed output (e.g. CloudEvent types gateledger does not model), per stage and reason.",
    ["stage", "reason"],
)
BEYOND_WINDOW = Counter(
    "gateledger_processor_beyond_dedup_window_total",
    "Events older than watermark - dedup window (processed; a duplicate of them may pass), per stage.",
    ["stage"],
)
OPEN_INTERACTIONS = Gauge(
    "gateledger_processor_open_interactions", "Interactions collecting events and not yet emitted."
)
STATE_ENTRIES = Gauge("gateledger_processor_state_entries", "Entries in a state table.", ["table"])
STATE_BYTES = Gauge(
    "gateledger_processor_state_bytes",
    "Bytes of a state table as persisted to its changelog (keys + JSON values), per table; set once per full pass.",
    ["table"],
)
TENANT_STATE_ENTRIES = Gauge(
    "gateledger_processor_tenant_state_entries", "Entries in a state table, per table and tenant ('-': no tenant).",
    ["table", "tenant"],
)
TENANT_STATE_BYTES = Gauge(
    "gateledger_processor_tenant_state_bytes",
    "Bytes of a state table as persisted (keys + JSON values), per table and tenant ('-': no tenant).",
    ["table", "tenant"],
)
MEMORY_LIMIT = Gauge(
    "gateledger_processor_memory_limit_bytes",
    "Memory this worker may use (cgroup limit, else the machine's RAM): what GateledgerProcessorMemoryRunningOut "
    "compares its resident memory's trend with.",
)
EMIT_DELAY = Histogram(
    "gateledger_processor_emit_delay_seconds",
    "From an output's event time to its emission (processing clock minus event time).",
    ["stage"],
    buckets=(0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600, 1800, 3600, 21600, 86400),
)
CONSUMER_LAG = Gauge(
    "gateledger_processor_consumer_lag_messages",
    "Messages not yet processed, from fetch high watermarks (true on Tansu), per topic and partition.",
    ["topic", "partition"],
)
CONSUMER_POSITION = Gauge(
    "gateledger_processor_consumer_position",
    "Next offset to process on a source partition (the committed one until the first batch), per topic and partition.",
    ["topic", "partition"],
)
WATERMARK = Gauge(
    "gateledger_processor_watermark_seconds", "Event-time watermark (epoch seconds), per stage and partition.",
    ["stage", "partition"],
)
BATCH_SECONDS = Histogram(
    "gateledger_processor_batch_seconds", "Processing time of one batch (logic + sends + state), per stage.",
    ["stage"], buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5),
)
BUDGET_BACKFILLS = Counter(
    "gateledger_processor_budget_backfills_total",
    "Budgets whose earlier spend in their current period was counted from cost.ledger (new or re-scoped budgets).",
)
BUDGET_BACKFILL_CONTRIBUTIONS = Counter(
    "gateledger_processor_budget_backfill_contributions_total",
    "Contributions produced by budget backfills (rows the fan-out also counted add nothing twice).",
)
SOURCE_LAG = Gauge(
    "gateledger_processor_source_lag_seconds",
    "Event time by which a source's newest event trails its tenant's newest event, per stage, tenant and source.",
    ["stage", "tenant", "source"],
)
SOURCE_ACTIVE = Gauge(
    "gateledger_processor_source_active",
    "1 while a source holds its tenant's watermark back (delivered within source_idle_s), else 0.",
    ["stage", "tenant", "source"],
)
TENANT_WATERMARK = Gauge(
    "gateledger_processor_tenant_watermark_seconds",
    "Event-time watermark of one tenant (epoch seconds), per stage (set by the partition holding the tenant's "
    "events; a tenant spread over partitions shows the last one reported).",
    ["stage", "tenant"],
)
