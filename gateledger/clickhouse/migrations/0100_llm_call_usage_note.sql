-- How an LLM call's usage was read when it is not the upstream's own prompt/completion split
-- (gateledger.contracts.events.LlmCall.usage_note): a call filled in from AxonFlow's audit trail
-- has tokens_used only, priced at the output rate (docs/ingest.md, "AxonFlow audit poller").
ALTER TABLE $db.llm_calls $on_cluster
    ADD COLUMN IF NOT EXISTS usage_note String DEFAULT '' AFTER event_ids;
