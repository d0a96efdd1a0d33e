-- Every envelope the producers accepted, as published to the raw topics (secrets already masked).
-- The payload expires before the metadata: investigations need "what happened" longer than "what was said".
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
    kafka_offset    UInt64,
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ${Replicated}ReplacingMergeTree(${replica_args_only})
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, time, id)
TTL toDateTime(time) + INTERVAL $ttl_days DAY
SETTINGS non_replicated_deduplication_window = 10000;
