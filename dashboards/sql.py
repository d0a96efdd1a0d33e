"""SQL fragments the panels share: variable filters and duplicate-free sources.

The base tables are ReplacingMergeTree: until a background merge, a re-delivered row or an older
version of a re-emitted row is still there. Panels therefore never aggregate a base table
directly; they read one of the sources below (newest version per id) or count ``uniqExact(id)``.
Each panel's SQL names its source once, on its FROM line: moving a panel to a rollup or an analyst
view later replaces that one line.
"""

from __future__ import annotations

from gateledger.tables import NEWEST_PER_ID, Table, newest, withdrawable


def any_of(column: str, variable: str) -> str:
    """``column`` is one of the selected values of a multi-value variable; "All" filters nothing."""
    return f"$__conditionalAll({column} IN (${{{variable}:singlequote}}), ${variable})"


def any_of_if_set(column: str, variable: str) -> str:
    """Like ``any_of``, but rows without a value in ``column`` pass: each filter narrows only its own
    dimension (the cost ledger's LLM rows have no MCP server, its tool rows no model)."""
    return f"$__conditionalAll(({column} = '' OR {column} IN (${{{variable}:singlequote}})), ${variable})"


def has_any(array_column: str, variable: str) -> str:
    """An Array column shares a value with the selection of a multi-value variable; "All" filters nothing."""
    return f"$__conditionalAll(hasAny({array_column}, [${{{variable}:singlequote}}]), ${variable})"


def where(*conditions: str) -> str:
    """Conditions joined with AND."""
    return " AND ".join(f"({c})" if " OR " in c.upper() else c for c in conditions if c)


def latest(table: str, columns: str, *conditions: str) -> str:
    """The rows of ``table`` matching ``conditions`` at their latest version (gateledger.tables.newest:
    the one meaning of "latest", withdrawn events left out where a table has them)."""
    return newest(table, columns, where(*conditions))


# How many of the newest candidate rows a page looks at per row it shows (newest_page): the slack for
# candidates that turn out superseded, duplicated or withdrawn.
PAGE_WINDOW = 2
# Where the fast page looks for its candidates: the last day of the range (issue 22).
PAGE_LOOKBACK = "time > $__toTime - 86400"


def page_order(last: str, tie: str = "") -> str:
    """The order of a newest-first page: rows where ``last`` holds after the others, each newest first.
    ``last`` may also be a rank (0 first, as the findings' severity): "false" is then rank 0."""
    return f"{last}, time DESC" + (f", {tie}" if tie else "")


def newest_page(table: str, limit: int, *conditions: str, last: str, sort_columns: str,
                tie: str = "", versions: str = "") -> tuple[str, str]:
    """The fast way to the keys (tenant, time, id, version) of the page ``latest_page`` keeps, and the SQL
    counting the rows it is sure of: the page is right when that count is at least ``limit``.

    Only the newest ``PAGE_WINDOW * limit`` rows where ``last`` is false (any version) are candidates, from
    the oldest of their times T0 on; every version of the candidates' ids (an id's time can move) then
    says which are newest. Any newest version not among them lies before T0 or has ``last`` true, so it
    ranks below each of them: with ``limit`` of them standing, they begin the page.

    That holds for any T0 (the count decides), so T0 is looked for in the range's last ``PAGE_LOOKBACK``
    only: a month's range then costs a day's scan, and where that day holds too few rows, fewer are
    sure and the page is read the slow way.

    ``versions``: a table holding the same rows as ``table`` (tenant, time, id, version, ``sort_columns``,
    retracted) ordered by id (gateledger.tables.VERSIONS), where the candidates' versions are a primary
    key look-up rather than a scan of the range's ids."""
    rows = where(*conditions)
    t0 = (f"(SELECT min(time) FROM (SELECT time FROM {table} WHERE {where(rows, PAGE_LOOKBACK, f'NOT ({last})')}"
          f" ORDER BY time DESC LIMIT {PAGE_WINDOW * limit}))")
    candidates = f"SELECT id FROM {table} WHERE {where(rows, f'time >= {t0}', f'NOT ({last})')}"
    newest = (
        f"SELECT tenant, time, id, version, {sort_columns}, {'retracted' if withdrawable(table) else 'false'} AS withdrawn"
        f" FROM {versions or table} WHERE {where(rows, f'id IN ({candidates})')} {NEWEST_PER_ID}"
    )
    sure = f"SELECT tenant, time, id, version, {sort_columns} FROM ({newest}) WHERE NOT withdrawn AND NOT ({last}) AND time >= {t0}"
    return (f"SELECT tenant, time, id, version FROM ({sure}) ORDER BY {page_order(last, tie)} LIMIT {limit}",
            f"SELECT count() FROM ({sure})")


def latest_page(table: str, columns: str, limit: int, *conditions: str, last: str, sort_columns: str,
                tie: str = "", versions: str = "") -> str:
    """The rows of ``latest(table, columns, *conditions)`` that ``ORDER BY page_order(last, tie) LIMIT limit``
    keeps, reading whole rows only for that page.

    The page's keys come from ``newest_page`` when it is sure of them (a look at the newest rows only);
    otherwise, from the newest version of every id in the range, read from the key, the version and
    ``sort_columns`` (what the order reads) alone. ClickHouse skips the branch whose guard (a scalar)
    is false. Then only the page's rows (one exact version each) are read with every column, found by
    the primary key. The caller orders and limits again, as over latest(). ``versions``: as for newest_page."""
    fast, sure = newest_page(table, limit, *conditions, last=last, sort_columns=sort_columns, tie=tie,
                             versions=versions)
    narrow = latest(table, f"tenant, time, version, {sort_columns}", *conditions, f"({sure}) < {limit}")
    whole = f"SELECT tenant, time, id, version FROM {narrow} ORDER BY {page_order(last, tie)} LIMIT {limit}"
    page = f"SELECT * FROM ({fast}) WHERE ({sure}) >= {limit} UNION ALL {whole}"
    return (
        f"(SELECT id, {columns} FROM {table} WHERE {where(*conditions, f'(tenant, time, id, version) IN ({page})')}"
        f" {NEWEST_PER_ID})"
    )


def first_landed(table: Table, columns: str, *conditions: str) -> str:
    """One row per event id of a table without versions (raw_events): the copy that landed first."""
    return (
        f"(SELECT id, {columns} FROM {table} WHERE {where(*conditions)} ORDER BY inserted_at LIMIT 1 BY id)"
    )


# The filters every dashboard applies, by the variable they follow.
TIME = "$__timeFilter(time)"
TENANT = any_of("tenant", "tenant")


# Rollups (migration 0080) hold whole minutes. A panel reads the minutes lying wholly inside the time
# range from the rollup and the (at most two) partial minutes at its edges from the base table, so it
# answers exactly what the same query over base rows would, for any range and any interval of whole
# minutes (rollup panels have a 1-minute minimum interval).
ROLLUP_INTERVAL = "1m"
FULL_MINUTES = "minute >= $__fromTime AND minute <= $__toTime - 60"
EDGE_MINUTES = (
    "$__timeFilter(time) AND (time < $__fromTime + 60 OR time > $__toTime - 60)"
    " AND (toStartOfMinute(time) < $__fromTime OR toStartOfMinute(time) > $__toTime - 60)"
)
# The delay sketches of delays_per_minute / delays_per_hour (migration 0170), and how to merge them.
DELAY_SKETCH = "quantilesBFloat16State(0.5, 0.95, 0.99)(dateDiff('millisecond', time, inserted_at))"
DELAY_QUANTILES = "quantilesBFloat16Merge(0.5, 0.95, 0.99)(delay_ms)"


def _union(*parts: str) -> str:
    return "(\n  " + "\n  UNION ALL\n  ".join(parts) + "\n)"


def landings(tables: tuple[Table, ...], *conditions: str) -> str:
    """Each event once (its first landed copy) per minute: tenant, minute, output_table, source, type
    and events. (Their delays: delays().)"""
    names = ", ".join(f"'{t}'" for t in tables)
    parts = [(
        f"SELECT tenant, minute, output_table, source, type, events FROM {Table.LANDINGS_PER_MINUTE} "
        f"WHERE {where(f'output_table IN ({names})', FULL_MINUTES, *conditions)}"
    )]
    for t in tables:
        raw = t == Table.RAW_EVENTS  # the only table with a source and type per event
        columns = "tenant, time" + (", source, type" if raw else "")
        source_type = "source, type" if raw else "'' AS source, '' AS type"
        parts.append(
            f"SELECT tenant, toStartOfMinute(time) AS minute, '{t}' AS output_table, {source_type}, "
            "toInt64(count()) AS events "
            f"FROM {first_landed(t, columns, EDGE_MINUTES, *conditions)} "
            "GROUP BY tenant, minute, output_table, source, type"
        )
    return _union(*parts)


# Whole hours can stand for their minutes when the panel's interval is a whole number of hours: every
# interval bucket ($__timeInterval, aligned to the epoch) then holds whole hours.
HOURLY_INTERVAL = "$__interval_s % 3600 = 0"
# A panel that does not group by time (a stat, a table over the range): whole hours always stand for
# their minutes.
ANY_INTERVAL = "1"


def delays(tables: tuple[Table, ...], *conditions: str) -> str:
    """Each event once (its first landed copy): tenant, minute, output_table and delay_ms (a
    quantilesBFloat16(0.5, 0.95, 0.99) state of event time → landed, ms: merge with DELAY_QUANTILES), one row per minute, or per hour
    for the hours wholly inside the range when the interval is whole hours (delays_per_hour), so that
    a month at an hourly interval merges one digest per hour and key instead of sixty."""
    names = ", ".join(f"'{t}'" for t in tables)
    of_tables = f"output_table IN ({names})"
    minute_in_hours = f"NOT ({HOURLY_INTERVAL} AND {MINUTE_IN_FULL_HOURS})"
    parts = [
        f"SELECT tenant, hour AS minute, output_table, delay_ms FROM {Table.DELAYS_PER_HOUR} "
        f"WHERE {where(of_tables, HOURLY_INTERVAL, FULL_HOURS, *conditions)}",
        f"SELECT tenant, minute, output_table, delay_ms FROM {Table.DELAYS_PER_MINUTE} "
        f"WHERE {where(of_tables, FULL_MINUTES, minute_in_hours, *conditions)}",
    ]
    for t in tables:
        parts.append(
            f"SELECT tenant, toStartOfMinute(time) AS minute, '{t}' AS output_table, {DELAY_SKETCH} AS delay_ms "
            f"FROM {first_landed(t, 'tenant, time, inserted_at', EDGE_MINUTES, *conditions)} "
            "GROUP BY tenant, minute, output_table"
        )
    return _union(*parts)


COST_ROLLUP_COLUMNS = (
    "tenant, minute, kind, user_id, team, mcp_server_id, tool_name, provider, model, unpriced, entries,"
    " input_tokens, output_tokens, cost_usd, last_time"
)


def costs(*conditions: str, outside_full_hours: bool = False, hours: str = "") -> str:
    """Live cost entries summed per minute and dimension (cost_per_minute), columns COST_ROLLUP_COLUMNS;
    kind as in the ledger ('llm' / 'tool'), entries = cost entries at their latest version.
    ``outside_full_hours``: leave out the hours lying wholly inside the range (user_costs reads them).
    ``hours``: a condition (HOURLY_INTERVAL, ANY_INTERVAL) under which those hours come instead from
    cost_per_hour, one row per hour and dimension, without the user and team (user_id and team '')."""
    if hours and outside_full_hours:
        raise ValueError("hours and outside_full_hours both choose who reads the whole hours")
    in_hours = f"{hours} AND {MINUTE_IN_FULL_HOURS}" if hours else ""
    skip = f"NOT ({MINUTE_IN_FULL_HOURS})" if outside_full_hours else f"NOT ({in_hours})" if hours else ""
    dims = "mcp_server_id, tool_name, provider, model, unpriced, entries, input_tokens, output_tokens, cost_usd, last_time"
    kind = "if(kind = 'llm', 'llm', 'tool') AS kind"
    parts = [
        f"SELECT tenant, minute, {kind}, user_id, team, {dims} FROM {Table.COST_PER_MINUTE} "
        f"WHERE {where(FULL_MINUTES, skip, *conditions)}"
    ]
    if hours:
        parts.insert(0, f"SELECT tenant, hour AS minute, {kind}, '' AS user_id, '' AS team, {dims} "
                        f"FROM {Table.COST_PER_HOUR} WHERE {where(hours, FULL_HOURS, *conditions)}")
    columns = "tenant, kind, user_id, team, mcp_server_id, tool_name, provider, model, unpriced, input_tokens, output_tokens, total_cost_usd"
    parts.append(
        "SELECT tenant, toStartOfMinute(time) AS minute, toString(kind) AS kind, user_id, team, mcp_server_id, tool_name,"
        " provider, model, toUInt8(unpriced) AS unpriced, toInt64(1) AS entries, toInt64(input_tokens) AS input_tokens,"
        " toInt64(output_tokens) AS output_tokens, total_cost_usd AS cost_usd, time AS last_time "
        f"FROM {latest(Table.COST_LEDGER, 'time, ' + columns, EDGE_MINUTES, *conditions)}"
    )
    return _union(*parts)


# Hours lying wholly inside the time range (user_cost_per_hour); the rest of the range comes from
# costs(), whose partial minutes lie at the range's edges and so never inside such an hour.
FULL_HOURS = "hour >= $__fromTime AND hour <= $__toTime - 3600"
# A per-minute row whose hour is one of FULL_HOURS (that hour is read from an hourly table instead).
MINUTE_IN_FULL_HOURS = FULL_HOURS.replace("hour", "toStartOfHour(minute)")


def user_costs(tenant: str, *filters: str, unfiltered: str = "") -> str:
    """Live cost entries per user over the range: tenant, user_id, team, entries, cost_usd, last_time
    (rows to sum: whole hours from user_cost_per_hour, the rest per minute or per entry from costs()).
    ``unfiltered``: a condition true when each of ``filters`` lets every row through (its variable is
    All); whole hours then come from user_spend_per_hour, one row per user, team and hour."""
    columns = "tenant, user_id, team, entries, cost_usd, last_time"
    filtered = f"NOT ({unfiltered})" if unfiltered else ""
    parts = [f"SELECT {columns} FROM {Table.USER_COST_PER_HOUR} WHERE {where(FULL_HOURS, filtered, tenant, *filters)}"]
    if unfiltered:
        parts.append(f"SELECT {columns} FROM {Table.USER_SPEND_PER_HOUR} WHERE {where(FULL_HOURS, unfiltered, tenant)}")
    parts.append(f"SELECT {columns} FROM {costs(tenant, *filters, outside_full_hours=True)}")
    return _union(*parts)


def user_costs_over_time(tenant: str, *filters: str, unfiltered: str) -> str:
    """Live cost entries per user and minute: tenant, minute, user_id, cost_usd; for the hours wholly
    inside the range, one row per user and hour (user_spend_per_hour) when the interval is whole hours
    and ``unfiltered`` holds (as in user_costs), so that a month of 1000+ users is not read per minute."""
    hourly = f"{HOURLY_INTERVAL} AND {unfiltered}"
    in_hours = f"{hourly} AND {MINUTE_IN_FULL_HOURS}"
    return _union(
        f"SELECT tenant, hour AS minute, user_id, cost_usd FROM {Table.USER_SPEND_PER_HOUR} "
        f"WHERE {where(hourly, FULL_HOURS, tenant)}",
        f"SELECT tenant, minute, user_id, cost_usd FROM {costs(tenant, *filters)} WHERE NOT ({in_hours})",
    )


CALL_COLUMNS = {
    # kind: (table, latency column, output tokens)
    "mcp": (Table.MCP_CALLS, "duration_ms", "toInt64(0)"),
    "llm": (Table.LLM_CALLS, "latency_ms", "toInt64(output_tokens)"),
}
LATENCY_QUANTILES = "quantilesIfMerge(0.5, 0.95, 0.99)(latency_state)"


def calls(kind: str, *conditions: str, hours: str = "") -> str:
    """MCP ('mcp') or LLM ('llm') calls at their latest version per minute (calls_per_minute): tenant, minute,
    mcp_server_id, tool_name, provider, model, status, calls, timed_calls (with a latency), timed_output_tokens,
    latency_sum_ms, last_time and latency_state (a quantilesIf(0.5, 0.95, 0.99) state: merge with LATENCY_QUANTILES).
    ``hours``: a condition (HOURLY_INTERVAL, ANY_INTERVAL) under which the hours lying wholly inside the
    range come from calls_per_hour instead, one row per hour and key (same sums, same sketch)."""
    table, latency, tokens = CALL_COLUMNS[kind]
    columns = "mcp_server_id, tool_name, provider, model, status"
    of_kind = f"kind = '{kind}'"
    sums = "calls, timed_calls, timed_output_tokens, latency_sum_ms, latency_state, last_time"
    in_hours = f"NOT ({hours} AND {MINUTE_IN_FULL_HOURS})" if hours else ""
    parts = [
        f"SELECT tenant, minute, {columns}, {sums} "
        f"FROM {Table.CALLS_PER_MINUTE} WHERE {where(of_kind, FULL_MINUTES, in_hours, *conditions)}"
    ]
    if hours:
        parts.insert(0, f"SELECT tenant, hour AS minute, {columns}, {sums} "
                        f"FROM {Table.CALLS_PER_HOUR} WHERE {where(of_kind, hours, FULL_HOURS, *conditions)}")
    dims = "mcp_server_id, tool_name, '' AS provider, '' AS model" if kind == "mcp" else "'' AS mcp_server_id, '' AS tool_name, provider, model"
    picked = "mcp_server_id, tool_name" if kind == "mcp" else "provider, model, output_tokens"
    parts.append(
        f"SELECT tenant, toStartOfMinute(time) AS minute, {dims}, toString(status) AS status, toInt64(count()) AS calls,"
        f" toInt64(countIf({latency} IS NOT NULL)) AS timed_calls, sumIf({tokens}, {latency} IS NOT NULL) AS timed_output_tokens,"
        f" toFloat64(sumIf(ifNull({latency}, 0), {latency} IS NOT NULL)) AS latency_sum_ms,"
        f" quantilesIfState(0.5, 0.95, 0.99)(toFloat64(ifNull({latency}, 0)), {latency} IS NOT NULL) AS latency_state, max(time) AS last_time "
        f"FROM {latest(table, f'tenant, time, status, {latency}, {picked}', EDGE_MINUTES, *conditions)} "
        f"GROUP BY tenant, minute, {columns}"
    )
    return _union(*parts)


DECISION_COLUMNS = (
    "tenant, minute, source, outcome, policy, block_reason, filter_name, mcp_server_id, tool_name, user_id,"
    " decisions, policy_hits, last_time"
)


def decisions(*conditions: str) -> str:
    """Pre-check (source 'policy_decisions', outcome approved / blocked), webhook decisions ('webhook_decisions',
    outcome = decision) and findings ('findings', outcome = kind) at their latest version per minute (decisions_per_minute), one row per blocking policy:
    sum(decisions) counts decisions, sum(policy_hits) counts (decision, policy) pairs; user_id set when blocked."""
    rollup = f"SELECT {DECISION_COLUMNS} FROM {Table.DECISIONS_PER_MINUTE} WHERE {where(FULL_MINUTES, *conditions)}"
    policy = (
        f"SELECT tenant, toStartOfMinute(time) AS minute, '{Table.POLICY_DECISIONS}' AS source,"
        " if(approved, 'approved', 'blocked') AS outcome, hit.1 AS policy, block_reason, '' AS filter_name,"
        " '' AS mcp_server_id, '' AS tool_name, if(approved, '', user_id) AS user_id, toInt64(hit.2 = 1) AS decisions,"
        " toInt64(1) AS policy_hits, time AS last_time "
        f"FROM {latest(Table.POLICY_DECISIONS, 'tenant, time, approved, user_id, policies, block_reason', EDGE_MINUTES, *conditions)} "
        "ARRAY JOIN arrayMap((p, i) -> (toString(p), i), if(empty(policies), [if(block_reason = '', '(unspecified)', block_reason)],"
        " CAST(policies, 'Array(String)')) AS named, arrayEnumerate(named)) AS hit"
    )
    webhook = (
        f"SELECT tenant, toStartOfMinute(time) AS minute, '{Table.WEBHOOK_DECISIONS}' AS source, toString(decision) AS outcome,"
        " '' AS policy, '' AS block_reason, filter_name, mcp_server_id, tool_name, '' AS user_id, toInt64(1) AS decisions,"
        " toInt64(1) AS policy_hits, time AS last_time "
        f"FROM {latest(Table.WEBHOOK_DECISIONS, 'tenant, time, decision, filter_name, mcp_server_id, tool_name', EDGE_MINUTES, *conditions)}"
    )
    findings = (
        f"SELECT tenant, toStartOfMinute(time) AS minute, '{Table.FINDINGS}' AS source, toString(kind) AS outcome, '' AS policy,"
        " '' AS block_reason, '' AS filter_name, '' AS mcp_server_id, '' AS tool_name, '' AS user_id, toInt64(1) AS decisions,"
        " toInt64(1) AS policy_hits, time AS last_time "
        f"FROM {latest(Table.FINDINGS, 'tenant, time, kind', EDGE_MINUTES, *conditions)}"
    )
    return _union(rollup, policy, webhook, findings)
