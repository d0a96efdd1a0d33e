-- The sink lands the batches of one table's partitions together (one row insert, one rollup feed per
-- flush, not per batch; issue 18). The deduplication token of such an insert belongs to the flush, so
-- a replay after a crash must re-form the same flush: each batch's range is recorded with the flush
-- it belongs to ('' = a flush of that batch alone, whose token is the batch's own).
ALTER TABLE $db.sink_batches $on_cluster ADD COLUMN IF NOT EXISTS flush String DEFAULT '';
