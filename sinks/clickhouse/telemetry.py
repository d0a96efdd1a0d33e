"""Prometheus metrics of the ClickHouse sink, named once here (dashboards and alert rules use these names)."""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ROWS_INSERTED = Counter("gateledger_sink_rows_inserted_total", "Rows accepted by ClickHouse.", ["table"])
BATCH_ROWS = Histogram(
    "gateledger_sink_batch_rows",
    "Rows per insert.",
    ["table"],
    buckets=(1, 10, 100, 500, 1000, 2500, 5000, 10000, 25000, 50000),
)
INSERT_LATENCY = Histogram(
    "gateledger_sink_insert_duration_seconds",
    "Time of one successful insert.",
    ["table"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
UNKNOWN_ERRORS = Counter(
    "gateledger_sink_unknown_errors_total",
    "Insert attempts failing with a ClickHouse error of no known kind (bounded retries, then dead letters).",
    ["table"],
)
RETRIES = Counter("gateledger_sink_insert_retries_total", "Inserts retried after a ClickHouse failure.", ["table"])
DEAD_LETTERS = Counter("gateledger_sink_dead_letters_total", "Rows sent to dead_letters by the sink.", ["table", "reason"])
CONSUMER_LAG = Gauge(
    "gateledger_sink_consumer_lag_messages", "Messages not yet landed, per topic and partition.", ["topic", "partition"]
)
BUFFERED_ROWS = Gauge("gateledger_sink_buffered_rows", "Rows consumed and waiting for insert.")
FAILING = Gauge("gateledger_sink_failing", "1 while inserts are failing and being retried.")
# Added with the batch log and the rollup feed.
BUFFERED_BYTES = Gauge("gateledger_sink_buffered_bytes", "Message bytes consumed and waiting for insert.")
PAUSED = Gauge("gateledger_sink_paused", "1 while consumption is paused because ClickHouse is behind (backpressure).")
REPLAYED_BATCHES = Counter(
    "gateledger_sink_replayed_batches_total",
    "Batches re-formed with the exact range an earlier run recorded (after a crash or rebalance).",
    ["table"],
)
ROLLUP_CHANGES = Counter(
    "gateledger_sink_rollup_changes_total", "Rows written to the rollup feed (+1 new or newer, -1 superseded).", ["table"]
)
COMMITTED_BATCHES = Counter("gateledger_sink_committed_batches_total", "Batches landed and committed.", ["table"])
MEMORY_LIMIT = Gauge(
    "gateledger_sink_memory_limit_bytes",
    "Memory the sink may use (cgroup limit, else the machine's RAM): what GateledgerSinkMemoryRunningOut "
    "compares its resident memory's trend with.",
)
