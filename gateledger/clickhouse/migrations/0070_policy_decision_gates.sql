-- AxonFlow's newer gates beside Gateway Mode pre-checks (gateledger.contracts.events.PolicyDecision):
-- /api/v1/decide and /api/v1/mcp/check-input|check-output verdicts, and X-Budget-Warning answers.
ALTER TABLE $db.policy_decisions $on_cluster
    ADD COLUMN IF NOT EXISTS gate LowCardinality(String) DEFAULT 'precheck' AFTER event_ids,
    ADD COLUMN IF NOT EXISTS decision_id String DEFAULT '' AFTER gate,
    ADD COLUMN IF NOT EXISTS tool_name String DEFAULT '' AFTER decision_id,
    ADD COLUMN IF NOT EXISTS budget_warning String DEFAULT '' AFTER tool_name;
