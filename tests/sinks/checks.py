"""Independent checks of landed data: duplicates in the analyst views, rollups against exact recomputation.

The exact figures are recomputed in Python from the events as published on the broker (the newest
version of each id), never from anything the product computed: not the rollups, and not the
``*_latest`` views either, so a version-selection bug shared by the views and the rollups shows. A
rollup that double-counted a duplicate, a replayed batch or a superseded version differs from them.
"""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from gateledger.contracts.events import CostEntry, LlmCall, McpCall, OutputEvent
from gateledger.settings import Settings
from gateledger.topics import Topic
from tests.stream_processors.harness import read_outputs

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


_MODELS: dict[Topic, type[OutputEvent]] = {Topic.MCP_CALLS: McpCall, Topic.LLM_CALLS: LlmCall,
                                           Topic.COST_LEDGER: CostEntry}
_MAX_VERSION = 2**32 - 1  # the tables' version column is UInt32: a larger one is refused (dead letter)


def published_latest(settings: Settings) -> dict[Topic, list[Any]]:
    """The newest version of every valid event published to the rollups' source topics, read from the broker.

    Messages that are no valid event (a test's deliberately bad ones) are the sink's dead letters, not usage.
    """
    out = asyncio.run(read_outputs(settings, tuple(_MODELS), skip_invalid=True))
    latest: dict[Topic, dict[str, Any]] = {t: {} for t in _MODELS}
    for topic, model in _MODELS.items():
        for raw in out.all(topic):
            try:
                e = model.model_validate(raw)
            except ValidationError:
                continue
            cur = latest[topic].get(e.id)
            if e.version <= _MAX_VERSION and (cur is None or e.version >= cur.version):
                latest[topic][e.id] = e
    return {t: list(v.values()) for t, v in latest.items()}


def _minute(t: datetime) -> datetime:
    return t.astimezone(UTC).replace(tzinfo=None, second=0, microsecond=0)


def _s(v: Any) -> str:
    return "" if v is None else str(v)


def exact_usage(settings: Settings) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """usage_per_minute recomputed in Python from the published events: key -> (calls, errors, denied,
    tokens x5, cost)."""
    latest = published_latest(settings)
    acc: dict[tuple[Any, ...], list[Any]] = {}
    zero_tokens = (0, 0, 0, 0, 0)
    for c in latest[Topic.MCP_CALLS]:
        status = _s(c.status)
        _add(acc, (c.tenant, _minute(c.time), "mcp", _s(c.mcp_server_id), _s(c.tool_name), "", ""),
             (1, int(status in ("failure", "timeout")), int(status == "denied"), *zero_tokens, Decimal(0)))
    for c in latest[Topic.LLM_CALLS]:
        tokens = (c.input_tokens, c.output_tokens, c.cache_read_tokens, c.cache_write_tokens, c.total_tokens)
        _add(acc, (c.tenant, _minute(c.time), "llm", "", "", _s(c.provider), _s(c.model)),
             (1, int((_s(c.status) or "success") != "success"), 0, *(int(x or 0) for x in tokens), Decimal(0)))
    for e in latest[Topic.COST_LEDGER]:
        kind = "llm" if _s(e.kind) == "llm" else "mcp"
        _add(acc, (e.tenant, _minute(e.time), kind, _s(e.mcp_server_id), _s(e.tool_name), _s(e.provider),
                   _s(e.model)), (0, 0, 0, *zero_tokens, e.total_cost_usd))
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
        _add(acc, (r[0], r[1].replace(tzinfo=None), *map(_s, r[2:7])), tuple(r[7:]))
    return _nonzero({k: tuple(v) for k, v in acc.items()})


def exact_cost_daily(settings: Settings) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """cost_daily recomputed in Python from the newest published cost_ledger versions."""
    acc: dict[tuple[Any, ...], list[Any]] = {}
    for e in published_latest(settings)[Topic.COST_LEDGER]:
        key = (e.tenant, e.time.astimezone(UTC).date(), *(_s(v) for v in (
            e.team, e.user_id, e.client_id, e.mcp_server_id, e.provider, e.model)))
        tokens = (e.input_tokens, e.output_tokens, e.cache_read_tokens, e.cache_write_tokens)
        _add(acc, key, (1, int(bool(e.unpriced)), *(int(x or 0) for x in tokens), e.total_cost_usd))
    return _nonzero({k: tuple(v) for k, v in acc.items()})


def rollup_cost_daily(client: Any, db: str) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    """cost_daily as the rollup view reports it."""
    rows = q(client, f"""
        SELECT tenant, day, toString(team), user_id, toString(client_id), toString(mcp_server_id),
               toString(provider), toString(model), entries, unpriced, input_tokens, output_tokens,
               cache_read_tokens, cache_write_tokens, cost_usd
        FROM {db}.cost_daily_v({VIEW_ARGS})""", **ALL_TIME)
    return _nonzero({(r[0], r[1], *map(_s, r[2:8])): tuple(r[8:]) for r in rows})


def assert_rollups_exact(client: Any, db: str, settings: Settings) -> None:
    """Both rollups equal their recomputation from the published events, key by key, to the last decimal."""
    exact, rolled = exact_usage(settings), rollup_usage(client, db)
    assert exact, "no usage to compare"
    missing = {k: v for k, v in exact.items() if rolled.get(k) != v}
    extra = {k: v for k, v in rolled.items() if k not in exact}
    assert not missing and not extra, f"usage_per_minute differs: want {list(missing.items())[:3]}, extra {list(extra.items())[:3]}"
    exact_c, rolled_c = exact_cost_daily(settings), rollup_cost_daily(client, db)
    missing_c = {k: v for k, v in exact_c.items() if rolled_c.get(k) != v}
    extra_c = {k: v for k, v in rolled_c.items() if k not in exact_c}
    assert not missing_c and not extra_c, f"cost_daily differs: want {list(missing_c.items())[:3]}, extra {list(extra_c.items())[:3]}"
    assert_dashboard_rollups_exact(client, db)


def _by_key(rows: list[tuple[Any, ...]]) -> dict[tuple[Any, ...], tuple[Any, ...]]:
    acc: dict[tuple[Any, ...], list[Any]] = {}
    for r in rows:
        _add(acc, (*(str(x) for x in r[:-2]),), tuple(r[-2:]))
    return _nonzero({k: tuple(v) for k, v in acc.items()})


def assert_dashboard_rollups_exact(client: Any, db: str) -> None:
    """The dashboards' rollups (migrations 0080-0082, 0115, 0174, 0175) equal exact recomputations, minute
    by minute (hour by hour for the hourly ones)."""
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
    for kind, table in (("mcp", "mcp_calls"), ("llm", "llm_calls")):
        exact += q(client, f"SELECT 'hour {kind}', tenant, toStartOfHour(time) AS h, toString(status), count(), 0 "
                           f"FROM {db}.{table}_latest({VIEW_ARGS}) GROUP BY ALL", **ALL_TIME)
    rolled += q(client, f"SELECT concat('hour ', kind), tenant, hour, status, calls, 0 FROM {db}.calls_per_hour")
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
    exact += q(client, f"SELECT 'hour cost', tenant, toStartOfHour(time) AS h, count(), sum(total_cost_usd) "
                       f"FROM {db}.cost_ledger_latest({VIEW_ARGS}) GROUP BY ALL", **ALL_TIME)
    rolled += q(client, f"SELECT 'hour cost', tenant, hour, entries, cost_usd FROM {db}.cost_per_hour")
    exact += q(client, f"SELECT 'user cost', tenant, toStartOfHour(time) AS h, user_id, team, count(), sum(total_cost_usd) "
                       f"FROM {db}.cost_ledger_latest({VIEW_ARGS}) GROUP BY ALL", **ALL_TIME)
    rolled += q(client, f"SELECT 'user cost', tenant, hour, user_id, team, entries, cost_usd FROM {db}.user_cost_per_hour")
    want, got = _by_key(exact), _by_key(rolled)
    assert want, "nothing to compare"
    diff = {k: (want.get(k), got.get(k)) for k in set(want) | set(got) if want.get(k) != got.get(k)}
    assert not diff, f"dashboard rollups differ from exact recomputation: {list(diff.items())[:3]}"
