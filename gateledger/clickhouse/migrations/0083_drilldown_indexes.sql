-- The interaction drill-down (issue 22) finds an interaction's records by the raw event ids it names,
-- over the whole dashboard range: bloom filters let it read only the granules holding them. The
-- interaction itself is looked up by id without a time range.
ALTER TABLE $db.mcp_calls $on_cluster ADD INDEX IF NOT EXISTS idx_event_ids event_ids TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE $db.llm_calls $on_cluster ADD INDEX IF NOT EXISTS idx_event_ids event_ids TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE $db.policy_decisions $on_cluster ADD INDEX IF NOT EXISTS idx_event_ids event_ids TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE $db.webhook_decisions $on_cluster ADD INDEX IF NOT EXISTS idx_event_ids event_ids TYPE bloom_filter(0.01) GRANULARITY 4;
ALTER TABLE $db.interactions $on_cluster ADD INDEX IF NOT EXISTS idx_id id TYPE bloom_filter(0.01) GRANULARITY 4;
-- Parts written before this migration get the indexes in the background.
ALTER TABLE $db.mcp_calls $on_cluster MATERIALIZE INDEX idx_event_ids;
ALTER TABLE $db.llm_calls $on_cluster MATERIALIZE INDEX idx_event_ids;
ALTER TABLE $db.policy_decisions $on_cluster MATERIALIZE INDEX idx_event_ids;
ALTER TABLE $db.webhook_decisions $on_cluster MATERIALIZE INDEX idx_event_ids;
ALTER TABLE $db.interactions $on_cluster MATERIALIZE INDEX idx_id;
