-- The sink's own durable state, kept in ClickHouse beside the data it protects.
--
-- sink_batches: the offset range of every batch, recorded BEFORE the batch is inserted. After a
-- crash, the first batches of a partition are re-formed with exactly these ranges, so they carry the
-- same deduplication tokens and ClickHouse drops whatever already landed (materialized-view rollups
-- included). Without it a batch re-read with other boundaries would slip past deduplication.
CREATE TABLE IF NOT EXISTS $db.sink_batches $on_cluster
(
    topic        LowCardinality(String),
    partition    UInt32,
    first_offset UInt64,
    last_offset  UInt64,
    recorded_at  DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ${Replicated}MergeTree(${replica_args_only})
ORDER BY (topic, partition, first_offset)
TTL toDateTime(recorded_at) + INTERVAL 30 DAY;

-- rollup_prior: for each batch of a rolled-up table, what the table held for the batch's event ids
-- before the batch landed (one JSON row per id, plus a marker row with id ''). Written once per batch
-- with the batch's deduplication token, so a replay after a crash reads back the snapshot the first
-- attempt saw instead of a table that may already contain the batch.
CREATE TABLE IF NOT EXISTS $db.rollup_prior $on_cluster
(
    batch       String,
    source      LowCardinality(String),
    id          String,
    version     UInt32,
    row         String CODEC(ZSTD(1)),
    recorded_at DateTime64(3, 'UTC') DEFAULT now64(3)
)
ENGINE = ${Replicated}MergeTree(${replica_args_only})
ORDER BY (batch, id)
TTL toDateTime(recorded_at) + INTERVAL 30 DAY
SETTINGS non_replicated_deduplication_window = 10000;
