-- Everything rejected at any stage: the reason, and the original bytes (masked) to replay from.
CREATE TABLE IF NOT EXISTS $db.dead_letters $on_cluster
(
    id              String,
    version         UInt32,
    tenant          LowCardinality(String),
    time            DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    stage           LowCardinality(String),
    origin          LowCardinality(String),
    reason          LowCardinality(String),
    error           String CODEC(ZSTD(3)),
    original        String CODEC(ZSTD(3)),
    original_sha256 String,
    original_size   UInt64,
    kafka_topic     LowCardinality(String),
    kafka_partition Nullable(Int32),
    kafka_offset    Nullable(Int64),
    details         String CODEC(ZSTD(3)),
    inserted_at     DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    CONSTRAINT id_set CHECK id != '',
    CONSTRAINT time_set CHECK time > toDateTime64('2000-01-01 00:00:00', 6, 'UTC')
)
ENGINE = ${Replicated}ReplacingMergeTree(${replica_args}version)
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, time, id)
TTL toDateTime(time) + INTERVAL $ttl_dead_letter_days DAY
SETTINGS non_replicated_deduplication_window = 10000;
