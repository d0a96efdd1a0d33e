-- HTTP refusals in dead letters (gateledger.contracts.events.DeadLetter, gateledger/refusals.py): the
-- status answered, the caller's address, and for coalesced refusals (401, 408, 429, a stranger's bad
-- header: no body kept) how many requests one letter stands for and over which span. Old rows stand
-- for one refusal each (count 1).
ALTER TABLE $db.dead_letters $on_cluster
    ADD COLUMN IF NOT EXISTS http_status Nullable(UInt16) AFTER details,
    ADD COLUMN IF NOT EXISTS caller String DEFAULT '' AFTER http_status,
    ADD COLUMN IF NOT EXISTS count UInt64 DEFAULT 1 AFTER caller,
    ADD COLUMN IF NOT EXISTS first_at Nullable(DateTime64(6, 'UTC')) AFTER count,
    ADD COLUMN IF NOT EXISTS last_at Nullable(DateTime64(6, 'UTC')) AFTER first_at;
