"""Every ClickHouse query the dashboards and Grafana alert rules send, and running them as Grafana would."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from decimal import Decimal
from typing import Any

from dashboards import alert_rules, build, grafana_sql
from dashboards.datasources import CLICKHOUSE_TYPE


@dataclass(frozen=True)
class Query:
    """One query: where it lives (dashboard uid, panel or variable or rule), its SQL, its result shape."""

    dashboard: str
    where: str
    sql: str
    query_type: str  # timeseries, table, variable, alert

    @property
    def name(self) -> str:
        return f"{self.dashboard} / {self.where}"


def dashboard_queries() -> list[Query]:
    """Panel targets and variable option queries of every generated dashboard."""
    out = []
    for uid in build.DASHBOARDS:
        dash = build.dashboard_json(uid)
        for v in dash["templating"]["list"]:
            if isinstance(v.get("query"), str) and (v.get("datasource") or {}).get("type") == CLICKHOUSE_TYPE:
                out.append(Query(uid, f"variable {v['name']}", v["query"], "variable"))
        for p in dash["panels"]:
            for t in p.get("targets") or []:
                if t["datasource"]["type"] == CLICKHOUSE_TYPE:
                    out.append(Query(uid, f"{p['title']} [{t['refId']}]", t["rawSql"], t["queryType"]))
    return out


def alert_queries() -> list[Query]:
    """The ClickHouse query (refId A) of every Grafana-managed alert rule."""
    return [Query("alert-rules", r.title, r.data[0].model.raw_sql, "alert") for r in alert_rules.rules()]


def panel_sql(uid: str, title: str) -> str:
    """The SQL of a panel's first target, by dashboard uid and panel title."""
    for q in dashboard_queries():
        if q.dashboard == uid and q.where.rsplit(" [", 1)[0] == title:
            return q.sql
    raise KeyError(f"{uid}: no panel {title!r}")


def run(
    client: Any, sql: str, time_range: grafana_sql.TimeRange, variables: dict[str, grafana_sql.Variable]
) -> tuple[list[str], list[tuple[Any, ...]]]:
    """Expand as Grafana would and run; column names and rows."""
    result = client.query(grafana_sql.expand(sql, time_range, variables))
    return list(result.column_names), [tuple(r) for r in result.result_rows]


def normalized(rows: list[tuple[Any, ...]]) -> list[tuple[Any, ...]]:
    """Rows in a canonical order with floats rounded (sums of floats depend on order)."""

    def norm(v: Any) -> Any:
        if isinstance(v, float):
            return float(f"{v:.9g}")
        if isinstance(v, Decimal):
            return v.normalize()
        if isinstance(v, datetime):
            return v.isoformat()
        if isinstance(v, list | tuple):
            return tuple(norm(x) for x in v)
        return v

    return sorted((tuple(norm(v) for v in r) for r in rows), key=repr)


def time_range(now: datetime, hours: float = 3) -> grafana_sql.TimeRange:
    """The dashboard range used on simulated data: the last hours, one-minute interval."""
    return grafana_sql.TimeRange(now - timedelta(hours=hours), now + timedelta(minutes=1), 60)
