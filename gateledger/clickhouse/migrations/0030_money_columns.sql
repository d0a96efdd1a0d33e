-- Money stage (issue 5): columns added to cost_ledger and budget_alerts, mirroring the additive
-- fields of CostEntry and BudgetAlert in gateledger.contracts.events.

ALTER TABLE $db.cost_ledger $on_cluster
    ADD COLUMN IF NOT EXISTS priced_model LowCardinality(String) AFTER unpriced,
    ADD COLUMN IF NOT EXISTS unpriced_reason LowCardinality(String) AFTER priced_model,
    ADD COLUMN IF NOT EXISTS pricing_note String AFTER unpriced_reason,
    ADD COLUMN IF NOT EXISTS mcp_server_name LowCardinality(String) AFTER mcp_server_id;

ALTER TABLE $db.budget_alerts $on_cluster
    ADD COLUMN IF NOT EXISTS period_key LowCardinality(String) AFTER period_end;
