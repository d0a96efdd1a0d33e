-- Every envelope the producers accepted, as published to the raw topics (secrets already masked).
-- The payload expires before the metadata: investigations need "what happened" longer than "what was said".
-- ORDER BY (tenant, time, id): every analyst question starts with a tenant and a time range, and
-- a re-delivered envelope (same tenant, time and deterministic id) collapses on merge.
CREATE TABLE IF NOT EXISTS $db.raw_events $on_cluster
(
    id              String,
    source          LowCardinality(String),
    type            LowCardinality(String),
    tenant          LowCardinality(String),
    time            DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    received_at     DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    subject         String,
    request_id      String,
    context_id      String,
    trace_id        String,
    session_id      String,
    data            String CODEC(ZSTD(3)) TTL toDateTime(time) + INTERVAL $ttl_raw_days DAY,
    kafka_topic     LowCardinality(String),
    kafka_partition UInt16,
    kafka_offset    UInt64 CODEC(T64, ZSTD(1)),
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    -- Investigations look events up by user and correlation key across a long time range.
    INDEX idx_subject subject TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_request request_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_context context_id TYPE bloom_filter(0.01) GRANULARITY 4,
    -- A row without these is unusable and, for time, would be deleted by TTL at once: refuse it.
    CONSTRAINT id_set CHECK id != '',
    CONSTRAINT tenant_set CHECK tenant != '',
    CONSTRAINT time_set CHECK time > toDateTime64('2000-01-01 00:00:00', 6, 'UTC')
)
ENGINE = ${Replicated}ReplacingMergeTree(${replica_args_only})
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, time, id)
TTL toDateTime(time) + INTERVAL $ttl_days DAY
SETTINGS non_replicated_deduplication_window = 10000;
