"""Independent checks of landed data: duplicates in the analyst views, rollups against exact recomputation.

The exact figures are recomputed from the latest-version views with plain GROUP BYs, never from the
rollup tables; a rollup that double-counted a duplicate, a replayed batch or a superseded version
differs from them.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

ALL_TIME = {"tenant": "", "since": "2000-01-01 00:00:00", "until": "2100-01-01 00:00:00"}
VIEW_ARGS = "tenant = {tenant:String}, since = {since:String}, until = {until:String}"

VERSIONED_TABLES = ("mcp_calls", "llm_calls", "policy_decisions", "webhook_decisions", "interactions",
                    "cost_ledger", "budget_alerts", "findings", "dead_letters", "raw_events")


def q(client: Any, sql: str, **params: Any) -> list[tuple[Any, ...]]:
    """Rows of a query with server-side parameters."""
    return list(client.query(sql, parameters=params or None).result_rows)


def view_counts(client: Any, db: str, table: str) -> tuple[int, int]:
    """(rows, distinct ids) in a table's latest-version view over all time and tenants."""
    (rows, distinct), = q(client, f"SELECT count(), uniqExact(id) FROM {db}.{table}_latest({VIEW_ARGS})", **ALL_TIME)
    return int(rows), int(distinct)


def _nonzero(d: dict[tuple[Any, ...], tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    return {k: v for k, v in d.items() if any(x != 0 for x in v)}


def _add(acc: dict[tuple[Any, ...], list[Any]], key: tuple[Any, ...], values: tuple[Any, ...]) -> None:
    cur = acc.setdefault(key, [0] * len(values))
    for i, v in enumerate(values):
        cur[i] += v if isinstance(v, Decimal) else int(v)


def exact_usage(client: Any, db: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """usage_per_minute recomputed from the latest versions: key -> (calls, errors, denied, tokens x5, cost)."""
    acc: dict[tuple[Any, ...], list[Any]] = {}
    for r in q(client, f"""
        SELECT tenant, toStartOfMinute(time) AS m, 'mcp', toString(mcp_server_id), toString(tool_name), '', '',
               count(), countIf(status IN ('failure', 'timeout')), countIf(status = 'denied')
        FROM {db}.mcp_calls_latest({VIEW_ARGS}) GROUP BY ALL""", **ALL_TIME):
        _add(acc, tuple(r[:7]), (*r[7:], 0, 0, 0, 0, 0, Decimal(0)))
    for r in q(client, f"""
        SELECT tenant, toStartOfMinute(time) AS m, 'llm', '', '', toString(provider), toString(model),
               count(), countIf(status != 'success'), 0, sum(input_tokens), sum(output_tokens),
               sum(cache_read_tokens), sum(cache_write_tokens), sum(total_tokens)
        FROM {db}.llm_calls_latest({VIEW_ARGS}) GROUP BY ALL""", **ALL_TIME):
        _add(acc, tuple(r[:7]), (*r[7:], Decimal(0)))
    for r in q(client, f"""
        SELECT tenant, toStartOfMinute(time) AS m, if(kind = 'llm', 'llm', 'mcp'), toString(mcp_server_id),
               toString(tool_name), toString(provider), toString(model), sum(total_cost_usd)
        FROM {db}.cost_ledger_latest({VIEW_ARGS}) GROUP BY ALL""", **ALL_TIME):
        _add(acc, tuple(r[:7]), (0, 0, 0, 0, 0, 0, 0, 0, r[7]))
    return _nonzero({k: tuple(v) for k, v in acc.items()})


def rollup_usage(client: Any, db: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """usage_per_minute as the rollup view reports it (same key and measures as exact_usage)."""
    rows = q(client, f"""
        SELECT tenant, minute, kind, toString(mcp_server_id), toString(tool_name), toString(provider),
               toString(model), calls, errors, denied, input_tokens, output_tokens, cache_read_tokens,
               cache_write_tokens, total_tokens, cost_usd
        FROM {db}.usage_per_minute_v({VIEW_ARGS})""", **ALL_TIME)
    acc: dict[tuple[Any, ...], list[Any]] = {}
    for r in rows:
        _add(acc, (r[0], r[1].replace(tzinfo=None), *r[2:7]), tuple(r[7:]))
    return _nonzero({k: tuple(v) for k, v in acc.items()})


def normalize_minutes(d: dict[tuple[Any, ...], tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """Keys with naive minute datetimes, whatever the driver returned."""
    return {(k[0], k[1].replace(tzinfo=None), *k[2:]): v for k, v in d.items()}


def exact_cost_daily(client: Any, db: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """cost_daily recomputed from the latest cost_ledger versions."""
    rows = q(client, f"""
        SELECT tenant, toDate(time), toString(team), user_id, toString(client_id), toString(mcp_server_id),
               toString(provider), toString(model), count(), countIf(unpriced), sum(input_tokens),
               sum(output_tokens), sum(cache_read_tokens), sum(cache_write_tokens), sum(total_cost_usd)
        FROM {db}.cost_ledger_latest({VIEW_ARGS}) GROUP BY ALL""", **ALL_TIME)
    return _nonzero({tuple(r[:8]): tuple(r[8:]) for r in rows})


def rollup_cost_daily(client: Any, db: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """cost_daily as the rollup view reports it."""
    rows = q(client, f"""
        SELECT tenant, day, toString(team), user_id, toString(client_id), toString(mcp_server_id),
               toString(provider), toString(model), entries, unpriced, input_tokens, output_tokens,
               cache_read_tokens, cache_write_tokens, cost_usd
        FROM {db}.cost_daily_v({VIEW_ARGS})""", **ALL_TIME)
    return _nonzero({tuple(r[:8]): tuple(r[8:]) for r in rows})


def assert_rollups_exact(client: Any, db: str) -> None:
    """Both rollups equal their exact recomputation, key by key, to the last decimal."""
    exact, rolled = normalize_minutes(exact_usage(client, db)), rollup_usage(client, db)
    assert exact, "no usage to compare"
    missing = {k: v for k, v in exact.items() if rolled.get(k) != v}
    extra = {k: v for k, v in rolled.items() if k not in exact}
    assert not missing and not extra, f"usage_per_minute differs: want {list(missing.items())[:3]}, extra {list(extra.items())[:3]}"
    exact_c, rolled_c = exact_cost_daily(client, db), rollup_cost_daily(client, db)
    assert exact_c == rolled_c, "cost_daily differs from exact recomputation"
    assert_dashboard_rollups_exact(client, db)


def _by_key(rows: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    acc: dict[tuple[Any, ...], list[Any]] = {}
    for r in rows:
        _add(acc, (*(str(x) for x in r[:-2]),), tuple(r[-2:]))
    return _nonzero({k: tuple(v) for k, v in acc.items()})


def assert_dashboard_rollups_exact(client: Any, db: str) -> None:
    """The dashboards' rollups (migrations 0080-0082) equal exact recomputations, minute by minute."""
    from sinks.clickhouse.rollups import ROLLUP_SOURCES

    exact, rolled = [], []
    for table in ROLLUP_SOURCES:  # each event once, whatever its copies and versions
        exact += q(client, f"SELECT '{table}', tenant, toStartOfMinute(time) AS m, uniqExact(id), 0 "
                           f"FROM {db}.{table} GROUP BY ALL")
    rolled += q(client, f"SELECT output_table, tenant, minute, events, 0 FROM {db}.landings_per_minute")
    for kind, table in (("mcp", "mcp_calls"), ("llm", "llm_calls")):
        exact += q(client, f"SELECT '{kind}', tenant, toStartOfMinute(time) AS m, toString(status), count(), 0 "
                           f"FROM {db}.{table}_latest({VIEW_ARGS}) GROUP BY ALL", **ALL_TIME)
    rolled += q(client, f"SELECT kind, tenant, minute, status, calls, 0 FROM {db}.calls_per_minute")
    exact += q(client, f"SELECT 'policy_decisions', tenant, toStartOfMinute(time) AS m, toString(toUInt8(approved)), count(), 0 "
                       f"FROM {db}.policy_decisions_latest({VIEW_ARGS}) GROUP BY ALL", **ALL_TIME)
    exact += q(client, f"SELECT 'webhook_decisions', tenant, toStartOfMinute(time) AS m, toString(decision), count(), 0 "
                       f"FROM {db}.webhook_decisions_latest({VIEW_ARGS}) GROUP BY ALL", **ALL_TIME)
    exact += q(client, f"SELECT 'findings', tenant, toStartOfMinute(time) AS m, toString(kind), count(), 0 "
                       f"FROM {db}.findings_latest({VIEW_ARGS}) GROUP BY ALL", **ALL_TIME)
    rolled += q(client, f"SELECT source, tenant, minute, if(source = 'policy_decisions', toString(outcome = 'approved'),"
                        f" outcome), decisions, 0 FROM {db}.decisions_per_minute")
    exact += q(client, f"SELECT 'cost', tenant, toStartOfMinute(time) AS m, count(), sum(total_cost_usd) "
                       f"FROM {db}.cost_ledger_latest({VIEW_ARGS}) GROUP BY ALL", **ALL_TIME)
    rolled += q(client, f"SELECT 'cost', tenant, minute, entries, cost_usd FROM {db}.cost_per_minute")
    want, got = _by_key(exact), _by_key(rolled)
    assert want, "nothing to compare"
    diff = {k: (want.get(k), got.get(k)) for k in set(want) | set(got) if want.get(k) != got.get(k)}
    assert not diff, f"dashboard rollups differ from exact recomputation: {list(diff.items())[:3]}"
