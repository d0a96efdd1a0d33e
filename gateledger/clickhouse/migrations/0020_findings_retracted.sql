-- Findings can be withdrawn by a later version when late evidence disproves them
-- (gateledger.contracts.events.Finding.retracted).
ALTER TABLE $db.findings $on_cluster ADD COLUMN IF NOT EXISTS retracted Bool DEFAULT false AFTER detected_at;
