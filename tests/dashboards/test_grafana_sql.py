"""The emulation of Grafana's variable interpolation and the ClickHouse plugin's macros (pure logic).

Expected strings follow the plugin's pkg/macros (Go) and its frontend formatter, so a query that
expands here expands the same way in Grafana.
"""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from dashboards.grafana_sql import (
    ALL,
    MacroError,
    TimeRange,
    Variable,
    apply_conditional_all,
    expand,
    referenced_variables,
)

FROM = datetime(2026, 11, 20, 10, 0, tzinfo=UTC)  # 1795168800
TO = datetime(2026, 11, 20, 16, 0, 30, 250000, tzinfo=UTC)  # 1795190430.25
TR = TimeRange(FROM, TO, interval_s=120)
F, T = int(FROM.timestamp()), int(TO.timestamp())


@pytest.mark.parametrize(
    ("sql", "want"),
    [
        ("$__timeFilter(time)", f"time >= toDateTime({F}) AND time <= toDateTime({T})"),
        (
            "$__timeFilter_ms(ts)",
            f"ts >= fromUnixTimestamp64Milli({F}000) AND ts <= fromUnixTimestamp64Milli({T}250)",
        ),
        ("$__dateFilter(d)", "d >= toDate('2026-11-20') AND d <= toDate('2026-11-20')"),
        (
            "$__dt(d, t)",
            f"(d >= toDate('2026-11-20') AND d <= toDate('2026-11-20')) AND "
            f"(t >= toDateTime({F}) AND t <= toDateTime({T}))",
        ),
        ("$__timeInterval(time)", "toStartOfInterval(toDateTime(time), INTERVAL 120 second)"),
        ("$__timeInterval_ms(time)", "toStartOfInterval(toDateTime64(time, 3), INTERVAL 120000 millisecond)"),
        ("x / $__interval_s", "x / 120"),
        ("$__fromTime, $__toTime", f"toDateTime({F}), toDateTime({T})"),
        ("$__fromTime_ms", f"fromUnixTimestamp64Milli({F}000)"),
        # Nested parentheses in a macro argument.
        (
            "$__timeFilter(toDateTime(coalesce(a, b)))",
            f"toDateTime(coalesce(a, b)) >= toDateTime({F}) AND toDateTime(coalesce(a, b)) <= toDateTime({T})",
        ),
        # Grafana built-ins.
        ("$__interval $__interval_ms $__range_s", f"120s 120000 {T - F}"),
        ("${__from} ${__to}", f"{F}000 {T}250"),
    ],
)
def test_macros_expand_like_the_plugin(sql: str, want: str) -> None:
    assert expand(sql, TR) == want


def test_interval_is_at_least_one_second() -> None:
    tr = TimeRange(FROM, TO, interval_s=0.2)
    assert (
        expand("$__interval_s|$__timeInterval(t)", tr)
        == "1|toStartOfInterval(toDateTime(t), INTERVAL 1 second)"
    )


@pytest.mark.parametrize(
    ("value", "fmt", "want"),
    [
        (["acme"], "", "'acme'"),  # the plugin's formatter quotes arrays
        (["acme", "globex"], "", "'acme','globex'"),
        (["o'brien"], ":singlequote", r"'o\'brien'"),
        (["o'brien", "x"], ":sqlstring", "'o''brien','x'"),
        (["a", "b"], ":csv", "a,b"),
        (["a", "b"], ":pipe", "a|b"),
        (["a"], ":raw", "a"),
    ],
)
def test_multi_value_formats(value: list[str], fmt: str, want: str) -> None:
    v = {"tenant": Variable(value, options=("acme", "globex"))}
    assert expand("${tenant%s}" % fmt, TR, v) == want


def test_single_value_variable_is_raw_and_all_expands_to_options_or_custom_value() -> None:
    assert expand("$x [[x]] ${x}", TR, {"x": Variable("v1", multi=False)}) == "v1 v1 v1"
    assert expand("${t:singlequote}", TR, {"t": Variable(ALL, options=("a", "b"))}) == "'a','b'"
    assert expand("${t}", TR, {"t": Variable(ALL, options=("a", "b"))}) == "'a','b'"
    assert expand("${t:singlequote}", TR, {"t": Variable(ALL, options=("a",), all_value=".*")}) == ".*"


def test_conditional_all() -> None:
    sql = "WHERE $__conditionalAll(tenant IN (${tenant:singlequote}), $tenant) AND x = 1"
    all_ = {"tenant": Variable(ALL, options=("a", "b"))}
    some = {"tenant": Variable(["a", "b"])}
    assert expand(sql, TR, all_) == "WHERE 1=1 AND x = 1"
    assert expand(sql, TR, some) == "WHERE tenant IN ('a','b') AND x = 1"
    # Nested: the inner phrase has parentheses and quoted commas, the variable is written ${x}.
    nested = (
        "$__conditionalAll((m = '' OR m IN (${m:singlequote})), ${m}) AND $__conditionalAll(f(a, ','), $t)"
    )
    assert (
        apply_conditional_all(nested, {"m": Variable(["x"]), "t": Variable(ALL)})
        == "(m = '' OR m IN (${m:singlequote})) AND 1=1"
    )


@pytest.mark.parametrize(
    "sql",
    [
        "$__timeFilter()",  # missing argument
        "$__timeFilter(a, b)",  # too many
        "$__nosuchmacro(x)",
        "$__timeFilter(time",  # unbalanced
        "$undefined_variable",
        "$__conditionalAll(a IN (1), $nope)",
        "${tenant:json}",  # a format we do not emulate
    ],
)
def test_bad_queries_are_errors_not_silently_passed(sql: str) -> None:
    with pytest.raises(MacroError):
        expand(sql, TR, {"tenant": Variable(["a"])})


def test_referenced_variables_skip_builtins_and_macros() -> None:
    sql = (
        "$__timeFilter(t) $tenant ${server:csv} [[model]] $__interval ${__url_time_range} ${__data.fields.x}"
    )
    assert referenced_variables(sql) == {"tenant", "server", "model"}


def test_time_range_must_be_aware() -> None:
    with pytest.raises(ValueError):
        TimeRange(datetime(2026, 1, 1), TO)
