-- Local-agent tool calls reported to Obot v0.24+ (Claude Code, Codex, Cursor, VS Code): who ran
-- which local tool on which device. `time` is Obot's recordedAt (its own clock, as every table is
-- sorted by); `occurred_at` is the device's client-reported time, kept apart because a skewed or
-- hostile client can set it to anything (obot-platform/obot pkg/gateway/client/mcpauditlog.go).

CREATE TABLE IF NOT EXISTS $db.local_agent_tool_calls $on_cluster
(
    id               String,
    version          UInt32,
    tenant           LowCardinality(String),
    time             DateTime64(6, 'UTC') CODEC(Delta, ZSTD(1)),
    source           LowCardinality(String),
    occurred_at      Nullable(DateTime64(6, 'UTC')),
    time_source      LowCardinality(String),
    actor_type       LowCardinality(String),
    actor_id         String,
    credential       String,
    device_id        String,
    hostname         String,
    os               LowCardinality(String),
    reported_user    String,
    agent_provider   LowCardinality(String),
    agent_version    LowCardinality(String),
    model            LowCardinality(String),
    tool_name        LowCardinality(String),
    tool_kind        LowCardinality(String),
    target_type      LowCardinality(String),
    target_name      String,
    parent_type      LowCardinality(String),
    parent_name      String,
    status           LowCardinality(String),
    reason           String,
    error            String CODEC(ZSTD(3)),
    duration_ms      Nullable(Int64),
    session_id       String,
    tool_use_id      String,
    turn_id          String,
    idempotency_key  String,
    client_ip        String,
    cwd              String,
    git_branch       String,
    event_ids        Array(String),
    inserted_at      DateTime64(3, 'UTC') DEFAULT now64(3) CODEC(Delta, ZSTD(1)),
    INDEX idx_device_id device_id TYPE bloom_filter(0.01) GRANULARITY 4,
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

-- For analysts, like the other *_latest views: duplicate-free rows for a tenant ('' = all) and
-- a recorded-time range [since, until).
CREATE VIEW IF NOT EXISTS $db.local_agent_tool_calls_latest $on_cluster AS
SELECT * FROM $db.local_agent_tool_calls FINAL
WHERE time >= {since:DateTime64(6, 'UTC')} AND time < {until:DateTime64(6, 'UTC')}
  AND ({tenant:String} = '' OR tenant = {tenant:String});
