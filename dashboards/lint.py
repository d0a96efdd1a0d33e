"""Structural checks of generated dashboards: what Grafana would accept but render wrongly, or not at all.

Each check returns human-readable problems; an empty list means the dashboards are sound.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator, Mapping
from datetime import UTC, datetime, timedelta
from typing import Any

from dashboards import grafana_sql
from dashboards.clickhouse_query import FORMAT, QueryType
from dashboards.datasources import CLICKHOUSE_TYPE, CLICKHOUSE_UID, PROMETHEUS_TYPE, PROMETHEUS_UID

GRID_WIDTH = 24
_DASHBOARD_LINK = re.compile(r"/d/([\w-]+)")


def panels(dash: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel, rows included, with the panels nested in collapsed rows."""
    for p in dash.get("panels", []):
        yield p
        yield from p.get("panels", []) or []


def content_panels(dash: Mapping[str, Any]) -> Iterator[dict[str, Any]]:
    """Every panel that shows data (not rows)."""
    return (p for p in panels(dash) if p.get("type") != "row")


def variable_names(dash: Mapping[str, Any]) -> list[str]:
    """Template variable names, in definition order."""
    return [v["name"] for v in (dash.get("templating") or {}).get("list", []) or []]


def _variable_refs(text: str) -> set[str]:
    return grafana_sql.referenced_variables(text)


def _overlaps(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    return (
        a["x"] < b["x"] + b["w"]
        and b["x"] < a["x"] + a["w"]
        and a["y"] < b["y"] + b["h"]
        and b["y"] < a["y"] + a["h"]
    )


def check_ids_and_grid(dash: Mapping[str, Any]) -> list[str]:
    """Unique panel ids; every panel on the 24-column grid; no two panels overlap."""
    problems = []
    seen: dict[int, str] = {}
    placed: list[tuple[str, dict[str, int]]] = []
    for p in panels(dash):
        title = p.get("title", "?")
        pid = p.get("id")
        if not isinstance(pid, int):
            problems.append(f"panel {title!r} has no numeric id")
        elif pid in seen:
            problems.append(f"panels {seen[pid]!r} and {title!r} share id {pid}")
        else:
            seen[pid] = title
        g = p.get("gridPos")
        if not g or any(not isinstance(g.get(k), int) for k in ("x", "y", "w", "h")):
            problems.append(f"panel {title!r} has no complete gridPos")
            continue
        if g["w"] <= 0 or g["h"] <= 0 or g["x"] < 0 or g["y"] < 0 or g["x"] + g["w"] > GRID_WIDTH:
            problems.append(f"panel {title!r} lies outside the grid: {g}")
        for other_title, other in placed:
            if _overlaps(g, other):
                problems.append(f"panels {other_title!r} and {title!r} overlap")
        placed.append((title, g))
    return problems


def check_targets(dash: Mapping[str, Any]) -> list[str]:
    """Datasources, refIds, and the ClickHouse target shape (``format`` agreeing with ``queryType``)."""
    problems = []
    for p in content_panels(dash):
        title = p.get("title", "?")
        targets = p.get("targets") or []
        if not targets:
            problems.append(f"panel {title!r} has no query")
            continue
        ref_ids = [t.get("refId") for t in targets]
        if len(set(ref_ids)) != len(ref_ids) or not all(ref_ids):
            problems.append(f"panel {title!r} has missing or duplicate refIds {ref_ids}")
        panel_ds = p.get("datasource") or {}
        for t in targets:
            ds = t.get("datasource") or {}
            if ds != panel_ds:
                problems.append(
                    f"panel {title!r} target {t.get('refId')} queries {ds}, the panel says {panel_ds}"
                )
            if ds.get("type") == CLICKHOUSE_TYPE:
                problems += _check_clickhouse_target(title, p.get("type", ""), t)
            elif ds.get("type") == PROMETHEUS_TYPE:
                if ds.get("uid") != PROMETHEUS_UID:
                    problems.append(f"panel {title!r} uses Prometheus datasource {ds.get('uid')!r}")
                if not (t.get("expr") or "").strip():
                    problems.append(f"panel {title!r} target {t.get('refId')} has no PromQL")
            else:
                problems.append(
                    f"panel {title!r} target {t.get('refId')} has datasource type {ds.get('type')!r}"
                )
    return problems


def _check_clickhouse_target(title: str, panel_type: str, t: Mapping[str, Any]) -> list[str]:
    problems = []
    ref = t.get("refId")
    if t["datasource"].get("uid") != CLICKHOUSE_UID:
        problems.append(
            f"panel {title!r} target {ref} uses ClickHouse datasource {t['datasource'].get('uid')!r}"
        )
    if t.get("editorType") != "sql" or not (t.get("rawSql") or "").strip():
        problems.append(f"panel {title!r} target {ref} is not a raw-SQL query")
    try:
        query_type = QueryType(t.get("queryType"))
    except ValueError:
        return problems + [f"panel {title!r} target {ref} has queryType {t.get('queryType')!r}"]
    if t.get("format") != FORMAT[query_type]:
        problems.append(
            f"panel {title!r} target {ref}: format {t.get('format')!r} does not match queryType "
            f"{query_type} (want {FORMAT[query_type]})"
        )
    if panel_type == "timeseries" and query_type != QueryType.TIMESERIES:
        problems.append(f"panel {title!r} is a time series but target {ref} returns a {query_type}")
    if panel_type == "table" and query_type != QueryType.TABLE:
        problems.append(f"panel {title!r} is a table but target {ref} returns {query_type}")
    return problems


def check_units_and_thresholds(dash: Mapping[str, Any]) -> list[str]:
    """Every data panel has a unit and coloured, ascending thresholds from -infinity."""
    problems = []
    for p in content_panels(dash):
        title = p.get("title", "?")
        defaults = (p.get("fieldConfig") or {}).get("defaults") or {}
        if not defaults.get("unit"):
            problems.append(f"panel {title!r} has no unit")
        steps = ((defaults.get("thresholds") or {}).get("steps")) or []
        if not steps or steps[0].get("value") is not None:
            problems.append(f"panel {title!r} thresholds must start with a base step (value null)")
            continue
        values = [s.get("value") for s in steps[1:]]
        if any(v is None for v in values) or values != sorted(values) or len(set(values)) != len(values):
            problems.append(f"panel {title!r} threshold values are not strictly ascending: {values}")
        if not all(s.get("color") for s in steps):
            problems.append(f"panel {title!r} has a threshold without a colour")
    return problems


def _texts(p: Mapping[str, Any]) -> Iterable[str]:
    yield p.get("title", "")
    for t in p.get("targets") or []:
        yield t.get("rawSql") or t.get("expr") or ""
        yield t.get("legendFormat") or ""
    for o in (p.get("fieldConfig") or {}).get("overrides") or []:
        for prop in o.get("properties") or []:
            if prop.get("id") == "links":
                for link in prop.get("value") or []:
                    yield link.get("url", "")


def check_variables(dash: Mapping[str, Any], known_dashboards: Iterable[str] = ()) -> list[str]:
    """Variables referenced exist (variables only use earlier ones); links point at known dashboards."""
    problems = []
    defined = variable_names(dash)
    if len(set(defined)) != len(defined):
        problems.append(f"duplicate variable names {defined}")
    for i, v in enumerate((dash.get("templating") or {}).get("list", []) or []):
        query = v.get("query") if isinstance(v.get("query"), str) else ""
        for ref in _variable_refs(query) - set(defined[:i]):
            problems.append(f"variable {v['name']!r} uses {ref!r}, which is not defined before it")
    for p in panels(dash):
        for text in _texts(p):
            for ref in _variable_refs(text) - set(defined):
                problems.append(f"panel {p.get('title')!r} references undefined variable ${ref}")
            for uid in _DASHBOARD_LINK.findall(text):
                if known_dashboards and uid not in known_dashboards:
                    problems.append(f"panel {p.get('title')!r} links to unknown dashboard {uid!r}")
    return problems


def default_variables(dash: Mapping[str, Any]) -> dict[str, grafana_sql.Variable]:
    """The dashboard's variables at their defaults (All for multi-value ones, a placeholder id for text boxes)."""
    out = {}
    for v in (dash.get("templating") or {}).get("list", []) or []:
        if v.get("type") == "textbox":
            out[v["name"]] = grafana_sql.Variable("placeholder", multi=False)
        else:
            out[v["name"]] = grafana_sql.Variable(
                grafana_sql.ALL, options=("placeholder",), multi=bool(v.get("multi"))
            )
    return out


def check_macros(dash: Mapping[str, Any]) -> list[str]:
    """Every ClickHouse query expands (macros, variables) the way Grafana and the plugin would."""
    problems = []
    now = datetime(2026, 1, 1, tzinfo=UTC)
    tr = grafana_sql.TimeRange(now - timedelta(hours=6), now, 60)
    variables = default_variables(dash)
    queries: list[tuple[str, str]] = [
        (f"variable {v['name']!r}", v["query"])
        for v in (dash.get("templating") or {}).get("list", []) or []
        if isinstance(v.get("query"), str) and (v.get("datasource") or {}).get("type") == CLICKHOUSE_TYPE
    ]
    for p in content_panels(dash):
        for t in p.get("targets") or []:
            if (t.get("datasource") or {}).get("type") == CLICKHOUSE_TYPE:
                queries.append((f"panel {p.get('title')!r} target {t.get('refId')}", t.get("rawSql", "")))
    for where, sql in queries:
        try:
            expanded = grafana_sql.expand(sql, tr, variables)
        except grafana_sql.MacroError as exc:
            problems.append(f"{where}: {exc}")
            continue
        if "$" in expanded.replace("$$", ""):
            problems.append(
                f"{where}: something was left unexpanded: {expanded[expanded.index('$') :][:40]!r}"
            )
    return problems


def check_dashboard(dash: Mapping[str, Any], known_dashboards: Iterable[str] = ()) -> list[str]:
    """All structural checks of one dashboard."""
    problems = []
    if not dash.get("uid") or not dash.get("title"):
        problems.append("dashboard needs a uid and a title")
    if not (dash.get("time") or {}).get("from") or not dash.get("refresh"):
        problems.append("dashboard needs a default time range and refresh")
    problems += check_ids_and_grid(dash)
    problems += check_targets(dash)
    problems += check_units_and_thresholds(dash)
    problems += check_variables(dash, known_dashboards)
    problems += check_macros(dash)
    return [f"{dash.get('uid')}: {p}" for p in problems]


def check_all(dashboards: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """All checks of a set of dashboards (uids must match their keys)."""
    problems = []
    for uid, dash in dashboards.items():
        if dash.get("uid") != uid:
            problems.append(f"{uid}: the dashboard says uid {dash.get('uid')!r}")
        problems += check_dashboard(dash, known_dashboards=dashboards.keys())
    return problems
