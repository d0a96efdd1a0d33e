-- Event time → landed delay, per minute and per hour, per output table and tenant only (issue 22).
-- landings_per_minute keeps a t-digest per minute, tenant, source and type: the delay panels merged
-- ~11 digests per minute and tenant for raw events, and a month at an hourly interval merged 43,200
-- minutes of them per key. These hold one sketch per minute (or hour) and key, fed like
-- landings_per_minute from landing_feed (each event once, at its first landing; the feed's insert is
-- deduplicated by the sink's flush token, and the views' inserts with it), so they count the same
-- events. A panel reads whole hours from the hourly table when its interval is whole hours, whole
-- minutes from the minute table otherwise, and the partial minutes at the range's edges from the base
-- tables (dashboards/sql.py: delays()).
-- The sketch is quantilesBFloat16, not a t-digest: a map of delays rounded to 8 significant bits
-- (within 0.4 %) to counts, tens of bytes where a minute's t-digest took ~2 KB, and merged about five
-- times faster (measured on the 10M-event benchmark data). Neither sketch interpolates between values.
CREATE TABLE IF NOT EXISTS $db.delays_per_minute $on_cluster
(
    output_table LowCardinality(String),
    tenant       LowCardinality(String),
    minute       DateTime('UTC') CODEC(Delta, ZSTD(1)),
    delay_ms     AggregateFunction(quantilesBFloat16(0.5, 0.95, 0.99), Int64)
)
ENGINE = ${Replicated}AggregatingMergeTree(${replica_args_only})
PARTITION BY toYYYYMM(minute)
ORDER BY (output_table, tenant, minute)
TTL minute + INTERVAL $ttl_rollup_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS $db.delays_per_minute_mv $on_cluster TO $db.delays_per_minute AS
SELECT
    output_table, tenant,
    toStartOfMinute(time) AS minute,
    quantilesBFloat16State(0.5, 0.95, 0.99)(dateDiff('millisecond', time, landed_at)) AS delay_ms
FROM $db.landing_feed
GROUP BY output_table, tenant, minute;

CREATE TABLE IF NOT EXISTS $db.delays_per_hour $on_cluster
(
    output_table LowCardinality(String),
    tenant       LowCardinality(String),
    hour         DateTime('UTC') CODEC(Delta, ZSTD(1)),
    delay_ms     AggregateFunction(quantilesBFloat16(0.5, 0.95, 0.99), Int64)
)
ENGINE = ${Replicated}AggregatingMergeTree(${replica_args_only})
PARTITION BY toYYYYMM(hour)
ORDER BY (output_table, tenant, hour)
TTL hour + INTERVAL $ttl_rollup_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS $db.delays_per_hour_mv $on_cluster TO $db.delays_per_hour AS
SELECT
    output_table, tenant,
    toStartOfHour(time) AS hour,
    quantilesBFloat16State(0.5, 0.95, 0.99)(dateDiff('millisecond', time, landed_at)) AS delay_ms
FROM $db.landing_feed
GROUP BY output_table, tenant, hour;

-- What landed before this migration: each event once, at its first landed copy, as the rebuild
-- (sinks/clickhouse/rebuild.py) feeds it. The sink applies migrations before it consumes.
INSERT INTO $db.delays_per_minute
SELECT output_table, tenant, toStartOfMinute(time) AS minute,
       quantilesBFloat16State(0.5, 0.95, 0.99)(dateDiff('millisecond', time, landed_at))
FROM (
    SELECT 'raw_events' AS output_table, tenant, time, min(inserted_at) AS landed_at FROM $db.raw_events GROUP BY tenant, time, id
    UNION ALL SELECT 'mcp_calls', tenant, time, min(inserted_at) FROM $db.mcp_calls GROUP BY tenant, time, id
    UNION ALL SELECT 'llm_calls', tenant, time, min(inserted_at) FROM $db.llm_calls GROUP BY tenant, time, id
    UNION ALL SELECT 'cost_ledger', tenant, time, min(inserted_at) FROM $db.cost_ledger GROUP BY tenant, time, id
    UNION ALL SELECT 'policy_decisions', tenant, time, min(inserted_at) FROM $db.policy_decisions GROUP BY tenant, time, id
    UNION ALL SELECT 'webhook_decisions', tenant, time, min(inserted_at) FROM $db.webhook_decisions GROUP BY tenant, time, id
    UNION ALL SELECT 'findings', tenant, time, min(inserted_at) FROM $db.findings GROUP BY tenant, time, id
)
GROUP BY output_table, tenant, minute;

INSERT INTO $db.delays_per_hour
SELECT output_table, tenant, toStartOfHour(minute) AS hour, quantilesBFloat16MergeState(0.5, 0.95, 0.99)(delay_ms)
FROM $db.delays_per_minute
GROUP BY output_table, tenant, hour;
