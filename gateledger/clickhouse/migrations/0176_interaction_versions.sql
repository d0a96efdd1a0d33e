-- Every version of every interaction, found by id (issue 22). The interactions list chooses its page
-- from the newest rows of the range, then must see every version of those candidates to know which
-- are newest: an interaction's time moves to a late earlier event, so its versions lie anywhere in
-- the range, and finding them by id in `interactions` (ordered by tenant, time, id) read the id column
-- of the whole range, 2.8 s for a month at 100M events. Here the candidates' versions are a primary
-- key look-up (dashboards/sql.py: newest_page), with only what the page's choice reads.
-- Filled by a view on the base table itself, unlike the rollups: this keeps rows, it sums nothing, so a
-- re-delivered row is the same row (collapsed by the ReplacingMergeTree) and an older version is
-- wanted (the list takes, as latest() does, the newest version among the rows inside the range). The
-- view sees each insert as sent: it also keeps versions that the base table's insert or merges
-- collapse, i.e. versions with a newer one under the same (tenant, time, id); that newer one stands
-- wherever they do, so which version is newest among the rows of a range is the same here.
-- Small granules and small compressed blocks: a page's ~2,000 candidates are scattered over the ids,
-- and each reads its granule and decompresses the block holding it (with 256-row granules and the
-- default 64 KiB+ blocks they read most of the table). Measured on ~6.2M interactions (the 100M-event
-- size's count, docs/benchmarks.md; median / minimum of 7): the candidates' versions by id 124 / 106 ms
-- with these blocks, 204 / 135 with the default ones, against 383 / 313 for the 30-day scan of the
-- range's ids in `interactions`; the small blocks take ~8 % more disk.
CREATE TABLE IF NOT EXISTS $db.interaction_versions $on_cluster
(
    id        String,
    tenant    LowCardinality(String),
    version   UInt32,
    time      DateTime64(6, 'UTC'),
    status    LowCardinality(String),
    retracted Bool
)
ENGINE = ${Replicated}ReplacingMergeTree(${replica_args_only})
PARTITION BY toYYYYMM(time)
ORDER BY (id, tenant, version)
TTL toDateTime(time) + INTERVAL $ttl_days DAY
SETTINGS index_granularity = 64, min_compress_block_size = 4096, max_compress_block_size = 8192,
         non_replicated_deduplication_window = 10000;

CREATE MATERIALIZED VIEW IF NOT EXISTS $db.interaction_versions_mv $on_cluster TO $db.interaction_versions AS
SELECT id, tenant, version, time, status, retracted
FROM $db.interactions;

-- What landed before this migration (the sink applies migrations before it consumes).
INSERT INTO $db.interaction_versions
SELECT id, tenant, version, time, status, retracted
FROM $db.interactions;
