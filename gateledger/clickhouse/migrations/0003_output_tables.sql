-- One table per output topic, mirroring gateledger.contracts.events (the sink maps JSON fields to
-- columns by name). ReplacingMergeTree(version): a re-delivered row collapses, a re-emitted row with a
-- higher version wins. Every version of one event keeps its tenant, time and id, so ORDER BY
-- (tenant, time, id) is both the analysts' access path and the collapsing key.
-- Compliance and money records (cost_ledger, budget_alerts, findings) are kept for $ttl_ledger_days days,
-- operational metadata for $ttl_days, message bodies for $ttl_raw_days.

CREATE TABLE IF NOT EXISTS $db.mcp_calls $on_cluster
(
    id               String,
    version          UInt32,
    tenant           LowCardinality(String),
    time             DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    source           LowCardinality(String),
    user_id          String,
    api_key_id       String,
    client_name      LowCardinality(String),
    client_version   LowCardinality(String),
    client_ip        String,
    user_agent       String,
    mcp_server_id    LowCardinality(String),
    mcp_server_name  LowCardinality(String),
    catalog_entry    LowCardinality(String),
    workspace_id     String,
    method           LowCardinality(String),
    tool_name        LowCardinality(String),
    target_type      LowCardinality(String),
    status           LowCardinality(String),
    http_status      Nullable(Int32),
    error            String CODEC(ZSTD(3)),
    duration_ms      Nullable(Int64),
    session_id       String,
    jsonrpc_id       String,
    request_id       String,
    trace_id         String,
    context_id       String,
    request_mutated  Bool,
    response_mutated Bool,
    webhook_rejected Bool,
    webhook_statuses String CODEC(ZSTD(3)),
    agent_provider   LowCardinality(String),
    agent_model      LowCardinality(String),
    request_body     String CODEC(ZSTD(3)) TTL toDateTime(time) + INTERVAL $ttl_raw_days DAY,
    response_body    String CODEC(ZSTD(3)) TTL toDateTime(time) + INTERVAL $ttl_raw_days DAY,
    complete         Bool,
    event_ids        Array(String),
    inserted_at      DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_request_id request_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_session_id session_id TYPE bloom_filter(0.01) GRANULARITY 4,
    CONSTRAINT id_set CHECK id != '',
    CONSTRAINT tenant_set CHECK tenant != '',
    CONSTRAINT time_set CHECK time > toDateTime64('2000-01-01 00:00:00', 6, 'UTC')
)
ENGINE = ${Replicated}ReplacingMergeTree(${replica_args}version)
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, time, id)
TTL toDateTime(time) + INTERVAL $ttl_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS $db.llm_calls $on_cluster
(
    id                 String,
    version            UInt32,
    tenant             LowCardinality(String),
    time               DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    source             LowCardinality(String),
    user_id            String,
    client_id          LowCardinality(String),
    api_key_id         String,
    provider           LowCardinality(String),
    model              LowCardinality(String),
    response_model     LowCardinality(String),
    input_tokens       UInt64,
    output_tokens      UInt64,
    cache_read_tokens  UInt64,
    cache_write_tokens UInt64,
    total_tokens       UInt64,
    tokens_reported    Bool,
    latency_ms         Nullable(Int64),
    status             LowCardinality(String),
    error              String,
    http_status        Nullable(Int32),
    context_id         String,
    request_id         String,
    trace_id           String,
    session_id         String,
    response_id        String,
    audit_id           String,
    event_ids          Array(String),
    inserted_at        DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_request_id request_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_context_id context_id TYPE bloom_filter(0.01) GRANULARITY 4,
    CONSTRAINT id_set CHECK id != '',
    CONSTRAINT tenant_set CHECK tenant != '',
    CONSTRAINT time_set CHECK time > toDateTime64('2000-01-01 00:00:00', 6, 'UTC')
)
ENGINE = ${Replicated}ReplacingMergeTree(${replica_args}version)
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, time, id)
TTL toDateTime(time) + INTERVAL $ttl_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS $db.policy_decisions $on_cluster
(
    id                   String,
    version              UInt32,
    tenant               LowCardinality(String),
    time                 DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    source               LowCardinality(String),
    context_id           String,
    request_id           String,
    trace_id             String,
    client_id            LowCardinality(String),
    user_id              String,
    user_token_hash      String,
    approved             Bool,
    block_reason         String,
    policies             Array(LowCardinality(String)),
    requires_redaction   Bool,
    http_status          Nullable(Int32),
    expires_at           Nullable(DateTime64(6, 'UTC')),
    data_sources         Array(String),
    mcp_servers          Array(String),
    agent_framework      LowCardinality(String),
    budget_id            String,
    budget_exceeded      Nullable(Bool),
    rate_limit_remaining Nullable(Int64),
    event_ids            Array(String),
    inserted_at          DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_request_id request_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_context_id context_id TYPE bloom_filter(0.01) GRANULARITY 4,
    CONSTRAINT id_set CHECK id != '',
    CONSTRAINT tenant_set CHECK tenant != '',
    CONSTRAINT time_set CHECK time > toDateTime64('2000-01-01 00:00:00', 6, 'UTC')
)
ENGINE = ${Replicated}ReplacingMergeTree(${replica_args}version)
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, time, id)
TTL toDateTime(time) + INTERVAL $ttl_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS $db.webhook_decisions $on_cluster
(
    id            String,
    version       UInt32,
    tenant        LowCardinality(String),
    time          DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    source        LowCardinality(String),
    origin        LowCardinality(String),
    filter_name   LowCardinality(String),
    phase         LowCardinality(String),
    method        LowCardinality(String),
    tool_name     LowCardinality(String),
    decision      LowCardinality(String),
    reason        String,
    mcp_server_id LowCardinality(String),
    user_id       String,
    session_id    String,
    jsonrpc_id    String,
    request_id    String,
    trace_id      String,
    mcp_call_id   String,
    event_ids     Array(String),
    inserted_at   DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_request_id request_id TYPE bloom_filter(0.01) GRANULARITY 4,
    CONSTRAINT id_set CHECK id != '',
    CONSTRAINT tenant_set CHECK tenant != '',
    CONSTRAINT time_set CHECK time > toDateTime64('2000-01-01 00:00:00', 6, 'UTC')
)
ENGINE = ${Replicated}ReplacingMergeTree(${replica_args}version)
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, time, id)
TTL toDateTime(time) + INTERVAL $ttl_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS $db.interactions $on_cluster
(
    id                 String,
    version            UInt32,
    tenant             LowCardinality(String),
    time               DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    end_time           DateTime64(6, 'UTC'),
    request_id         String,
    context_ids        Array(String),
    trace_id           String,
    session_id         String,
    user_id            String,
    client_id          LowCardinality(String),
    status             LowCardinality(String),
    approved           Nullable(Bool),
    block_reason       String,
    policies           Array(LowCardinality(String)),
    llm_calls          UInt32,
    tool_calls         UInt32,
    webhook_rejections UInt32,
    errors             UInt32,
    input_tokens       UInt64,
    output_tokens      UInt64,
    total_tokens       UInt64,
    cost_usd           Nullable(Decimal(38, 12)),
    latency_ms         Int64,
    models             Array(LowCardinality(String)),
    mcp_servers        Array(LowCardinality(String)),
    tools              Array(LowCardinality(String)),
    complete           Bool,
    close_reason       LowCardinality(String),
    event_ids          Array(String),
    emitted_at         DateTime64(6, 'UTC'),
    inserted_at        DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_request_id request_id TYPE bloom_filter(0.01) GRANULARITY 4,
    CONSTRAINT id_set CHECK id != '',
    CONSTRAINT tenant_set CHECK tenant != '',
    CONSTRAINT time_set CHECK time > toDateTime64('2000-01-01 00:00:00', 6, 'UTC')
)
ENGINE = ${Replicated}ReplacingMergeTree(${replica_args}version)
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, time, id)
TTL toDateTime(time) + INTERVAL $ttl_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS $db.cost_ledger $on_cluster
(
    id                   String,
    version              UInt32,
    tenant               LowCardinality(String),
    time                 DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    kind                 LowCardinality(String),
    event_id             String,
    interaction_id       String,
    user_id              String,
    team                 LowCardinality(String),
    client_id            LowCardinality(String),
    mcp_server_id        LowCardinality(String),
    tool_name            LowCardinality(String),
    provider             LowCardinality(String),
    model                LowCardinality(String),
    input_tokens         UInt64,
    output_tokens        UInt64,
    cache_read_tokens    UInt64,
    cache_write_tokens   UInt64,
    input_cost_usd       Decimal(38, 12),
    output_cost_usd      Decimal(38, 12),
    cache_read_cost_usd  Decimal(38, 12),
    cache_write_cost_usd Decimal(38, 12),
    tool_cost_usd        Decimal(38, 12),
    total_cost_usd       Decimal(38, 12),
    currency             LowCardinality(String),
    price_version        LowCardinality(String),
    price_entry          LowCardinality(String),
    unpriced             Bool,
    restated             Bool,
    computed_at          DateTime64(6, 'UTC'),
    inserted_at          DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_event_id event_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_interaction_id interaction_id TYPE bloom_filter(0.01) GRANULARITY 4,
    CONSTRAINT id_set CHECK id != '',
    CONSTRAINT tenant_set CHECK tenant != '',
    CONSTRAINT time_set CHECK time > toDateTime64('2000-01-01 00:00:00', 6, 'UTC')
)
ENGINE = ${Replicated}ReplacingMergeTree(${replica_args}version)
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, time, id)
TTL toDateTime(time) + INTERVAL $ttl_ledger_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS $db.budget_alerts $on_cluster
(
    id                  String,
    version             UInt32,
    tenant              LowCardinality(String),
    time                DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    budget_id           LowCardinality(String),
    budget_name         String,
    scope               Map(LowCardinality(String), String),
    period_start        DateTime64(6, 'UTC'),
    period_end          DateTime64(6, 'UTC'),
    kind                LowCardinality(String),
    threshold_pct       UInt16,
    spend_usd           Decimal(38, 12),
    limit_usd           Decimal(38, 12),
    utilization         Decimal(38, 12),
    projected_spend_usd Nullable(Decimal(38, 12)),
    action              LowCardinality(String),
    late                Bool,
    triggering_event_id String,
    fired_at            DateTime64(6, 'UTC'),
    inserted_at         DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    CONSTRAINT id_set CHECK id != '',
    CONSTRAINT tenant_set CHECK tenant != '',
    CONSTRAINT time_set CHECK time > toDateTime64('2000-01-01 00:00:00', 6, 'UTC')
)
ENGINE = ${Replicated}ReplacingMergeTree(${replica_args}version)
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, time, id)
TTL toDateTime(time) + INTERVAL $ttl_ledger_days DAY
SETTINGS non_replicated_deduplication_window = 10000;

CREATE TABLE IF NOT EXISTS $db.findings $on_cluster
(
    id                 String,
    version            UInt32,
    tenant             LowCardinality(String),
    time               DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    kind               LowCardinality(String),
    severity           LowCardinality(String),
    interaction_id     String,
    context_id         String,
    request_id         String,
    user_id            String,
    client_id          LowCardinality(String),
    description        String,
    evidence_event_ids Array(String),
    detected_at        DateTime64(6, 'UTC'),
    inserted_at        DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_user_id user_id TYPE bloom_filter(0.01) GRANULARITY 4,
    INDEX idx_interaction_id interaction_id TYPE bloom_filter(0.01) GRANULARITY 4,
    CONSTRAINT id_set CHECK id != '',
    CONSTRAINT tenant_set CHECK tenant != '',
    CONSTRAINT time_set CHECK time > toDateTime64('2000-01-01 00:00:00', 6, 'UTC')
)
ENGINE = ${Replicated}ReplacingMergeTree(${replica_args}version)
PARTITION BY toYYYYMM(time)
ORDER BY (tenant, time, id)
TTL toDateTime(time) + INTERVAL $ttl_ledger_days DAY
SETTINGS non_replicated_deduplication_window = 10000;
