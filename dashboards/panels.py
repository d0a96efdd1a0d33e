"""Panel factories: one call per panel, with the units, thresholds and datasource gateledger uses."""

from __future__ import annotations

from collections.abc import Sequence

from grafana_foundation_sdk.builders import bargauge, prometheus, stat, timeseries
from grafana_foundation_sdk.builders import common as common_b
from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.builders import table as table_b
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import common, dashboard

from dashboards.clickhouse_query import ClickHouse, QueryType
from dashboards.datasources import CLICKHOUSE, PROMETHEUS
from dashboards.sql import ROLLUP_INTERVAL

# Grafana unit ids used across the dashboards.
USD = "currencyUSD"
MS = "ms"
OPS = "ops"  # operations (events) per second
COUNT = "short"
PERCENT = "percentunit"  # 0..1 shown as %
SECONDS = "s"
USD_PER_HOUR = "currencyUSD"  # Grafana has no rate-of-currency unit; titles say "per hour"

Step = tuple[float | None, str]
GOOD_BAD: list[Step] = [(None, "green"), (1, "red")]  # any non-zero count is bad
ERROR_RATE: list[Step] = [(None, "green"), (0.01, "yellow"), (0.05, "red")]
UTILIZATION: list[Step] = [(None, "green"), (0.5, "yellow"), (0.8, "orange"), (1.0, "red")]
LATENCY_MS: list[Step] = [(None, "green"), (1000, "yellow"), (5000, "red")]
NEUTRAL: list[Step] = [(None, "blue")]

Target = ClickHouse | prometheus.Dataquery


def ch_timeseries(sql: str) -> ClickHouse:
    """A ClickHouse target returning time series (first DateTime column is the time)."""
    return ClickHouse(sql, QueryType.TIMESERIES)


def ch_table(sql: str) -> ClickHouse:
    """A ClickHouse target returning a table."""
    return ClickHouse(sql, QueryType.TABLE)


def prom(expr: str, legend: str = "", *, instant: bool = False) -> prometheus.Dataquery:
    """A Prometheus target."""
    q = prometheus.Dataquery().expr(expr).datasource(PROMETHEUS).legend_format(legend or "__auto")
    return q.instant() if instant else q.range()


def thresholds(steps: Sequence[Step]) -> dash_b.ThresholdsConfig:
    """Absolute, coloured thresholds; the first step's value is None (from -infinity)."""
    return (
        dash_b.ThresholdsConfig()
        .mode(dashboard.ThresholdsMode.ABSOLUTE)
        .steps([dashboard.Threshold(value=v, color=c) for v, c in steps])
    )


def _datasource(targets: Sequence[Target]) -> common.DataSourceRef:
    kinds = {type(t) for t in targets}
    if len(kinds) != 1:
        raise ValueError("a panel queries one datasource")
    return CLICKHOUSE if kinds == {ClickHouse} else PROMETHEUS


def _with_targets(panel: cogbuilder.Builder[dashboard.Panel], targets: Sequence[Target]):  # type: ignore[no-untyped-def]
    for i, t in enumerate(targets):
        panel = panel.with_target(t.ref_id(chr(ord("A") + i)))  # type: ignore[attr-defined]
    return panel.datasource(_datasource(targets))  # type: ignore[attr-defined]


def _legend(calcs: Sequence[str]) -> common_b.VizLegendOptions:
    return (
        common_b.VizLegendOptions()
        .display_mode(common.LegendDisplayMode.TABLE if calcs else common.LegendDisplayMode.LIST)
        .placement(common.LegendPlacement.BOTTOM)
        .show_legend(True)
        .calcs(list(calcs))
    )


def bars_per_interval(title: str, target: Target, *, unit: str, description: str,
                      rollup: bool = True) -> timeseries.Panel:
    """Amounts per interval, stacked bars whose legend sums the range: the one look of every "X by Y" count
    or spend panel. ``rollup``: it reads the per-minute rollups, so no interval is shorter than a minute."""
    return timeseries_panel(title, target, unit=unit, description=description, bars=True, stacked=True,
                            legend_calcs=("sum",), min_interval=ROLLUP_INTERVAL if rollup else None)


def timeseries_panel(
    title: str,
    *targets: Target,
    unit: str,
    description: str,
    steps: Sequence[Step] = NEUTRAL,
    stacked: bool = False,
    bars: bool = False,
    legend_calcs: Sequence[str] = ("mean", "max"),
    show_thresholds: bool = False,
    min_interval: str | None = None,
) -> timeseries.Panel:
    """A time-series graph (``min_interval``: "1m" for panels reading per-minute rollups)."""
    p = (
        timeseries.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .thresholds(thresholds(steps))
        .color_scheme(dash_b.FieldColor().mode(dashboard.FieldColorModeId.PALETTE_CLASSIC))
        .legend(_legend(legend_calcs))
        .tooltip(
            common_b.VizTooltipOptions()
            .mode(common.TooltipDisplayMode.MULTI)
            .sort(common.SortOrder.DESCENDING)
        )
        .fill_opacity(60 if bars else 10)
        .line_width(1)
        .min(0)
    )
    if bars:
        p = p.draw_style(common.GraphDrawStyle.BARS)
    if min_interval:
        p = p.interval(min_interval)
    if stacked:
        p = p.stacking(common_b.StackingConfig().mode(common.StackingMode.NORMAL))
    if show_thresholds:
        p = p.thresholds_style(
            common_b.GraphThresholdsStyleConfig().mode(common.GraphThresholdsStyleMode.DASHED)
        )
    return _with_targets(p, targets)


def stat_panel(
    title: str,
    target: Target,
    *,
    unit: str,
    description: str,
    steps: Sequence[Step] = NEUTRAL,
    decimals: int | None = None,
    graph: bool = False,
) -> stat.Panel:
    """A single big number, coloured by thresholds."""
    p = (
        stat.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .thresholds(thresholds(steps))
        .color_mode(common.BigValueColorMode.BACKGROUND)
        .graph_mode(common.BigValueGraphMode.AREA if graph else common.BigValueGraphMode.NONE)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
    )
    if decimals is not None:
        p = p.decimals(decimals)
    return _with_targets(p, [target])


def bargauge_panel(
    title: str,
    target: Target,
    *,
    unit: str,
    description: str,
    steps: Sequence[Step],
    min_value: float = 0,
    max_value: float | None = None,
) -> bargauge.Panel:
    """Horizontal bars per series, coloured by thresholds (utilization and the like)."""
    p = (
        bargauge.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .thresholds(thresholds(steps))
        .color_scheme(dash_b.FieldColor().mode(dashboard.FieldColorModeId.THRESHOLDS))
        .display_mode(common.BarGaugeDisplayMode.GRADIENT)
        .orientation(common.VizOrientation.HORIZONTAL)
        .show_unfilled(True)
        .reduce_options(common_b.ReduceDataOptions().calcs(["lastNotNull"]).values(False))
        .min(min_value)
    )
    if max_value is not None:
        p = p.max(max_value)
    return _with_targets(p, [target])


def link(title: str, url: str) -> dict[str, object]:
    """A data link (``${__value.raw}`` and ``${__data.fields.<col>}`` are expanded by Grafana)."""
    return {"title": title, "url": url}


def table_panel(
    title: str,
    target: Target,
    *,
    description: str,
    unit: str = COUNT,
    column_units: dict[str, str] | None = None,
    column_steps: dict[str, Sequence[Step]] | None = None,
    links: dict[str, dict[str, object]] | None = None,
    sort_by: str | None = None,
) -> table_b.Panel:
    """A table; per-column units, coloured thresholds and data links."""
    p = (
        table_b.Panel()
        .title(title)
        .description(description)
        .unit(unit)
        .thresholds(thresholds(NEUTRAL))
        .filterable(True)
    )
    for column, column_unit in (column_units or {}).items():
        p = p.override_by_name(column, [dashboard.DynamicConfigValue(id_val="unit", value=column_unit)])
    for column, steps in (column_steps or {}).items():
        p = p.override_by_name(
            column,
            [
                dashboard.DynamicConfigValue(id_val="thresholds", value=thresholds(steps).build()),
                dashboard.DynamicConfigValue(id_val="custom.cellOptions", value={"type": "color-background"}),
            ],
        )
    for column, data_link in (links or {}).items():
        p = p.override_by_name(column, [dashboard.DynamicConfigValue(id_val="links", value=[data_link])])
    if sort_by:
        p = p.sort_by([common_b.TableSortByFieldState().display_name(sort_by).desc(True)])
    return _with_targets(p, [target])
