"""What Grafana and the ClickHouse plugin do to a panel's SQL before ClickHouse sees it.

No Grafana runs here, so to run every panel's SQL against the real schema we reproduce the three
rewriting steps, in the order they happen:

1. the plugin's frontend ``$__conditionalAll(phrase, $var)`` (``1=1`` when the variable is All);
2. Grafana's template variables (``$var``, ``${var}``, ``${var:format}``, ``[[var]]``, and the
   built-ins ``$__interval``, ``$__interval_ms``, ``$__from``, ``$__to``, ``$__range_s``), with
   the plugin's own formatter for an unformatted multi-value (``'a','b'``);
3. the plugin's backend macros (``pkg/macros`` of grafana/clickhouse-datasource): ``$__timeFilter``,
   ``$__timeFilter_ms``, ``$__dateFilter``, ``$__dateTimeFilter``/``$__dt``, ``$__timeInterval``,
   ``$__timeInterval_ms``, ``$__interval_s``, ``$__fromTime``, ``$__toTime``, ``$__fromTime_ms``,
   ``$__toTime_ms``.

Anything left that looks like a macro or variable is an error here, where Grafana would send it to
ClickHouse and show a syntax error on the panel.
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime

ALL = "$__all"
"""The value Grafana stores when a variable's "All" option is selected."""


class MacroError(ValueError):
    """A macro or variable the emulated Grafana cannot expand."""


@dataclass(frozen=True)
class TimeRange:
    """The dashboard time range and the panel's interval, as Grafana sends them with a query."""

    start: datetime
    end: datetime
    interval_s: float = 60.0

    def __post_init__(self) -> None:
        if self.start.tzinfo is None or self.end.tzinfo is None:
            raise ValueError("time range bounds must be timezone-aware")


@dataclass(frozen=True)
class Variable:
    """A template variable's current value and options (``value`` may be ``ALL``)."""

    value: str | Sequence[str]
    options: Sequence[str] = field(default_factory=tuple)
    multi: bool = True
    all_value: str | None = None  # Grafana's "custom all value"; None sends every option

    def current(self) -> str | list[str]:
        """The value Grafana interpolates (All resolved to options or the custom all value)."""
        raw = [self.value] if isinstance(self.value, str) else list(self.value)
        if ALL in raw:
            if self.all_value is not None:
                return self.all_value
            return list(self.options)
        if self.multi:
            return raw
        if len(raw) != 1:
            raise MacroError("a single-value variable has exactly one value")
        return raw[0]

    def is_all(self) -> bool:
        """True when "All" is selected (what ``$__conditionalAll`` tests)."""
        raw = [self.value] if isinstance(self.value, str) else list(self.value)
        return ALL in raw or raw == [""]


# --- step 1: $__conditionalAll (plugin frontend) ------------------------------------------------


def _macro_args(text: str, open_paren: int) -> tuple[list[str], int]:
    """Arguments of a macro call whose '(' is at ``open_paren``: split at top-level commas."""
    depth = 0
    args: list[str] = []
    start = open_paren + 1
    quote: str | None = None
    i = open_paren - 1
    while (i := i + 1) < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1  # an escaped character inside a string literal
            elif ch == quote:
                quote = None
            continue
        if ch in ("'", '"'):
            quote = ch
        elif ch == "(":
            depth += 1
        elif ch == ")":
            depth -= 1
            if depth == 0:
                args.append(text[start:i])
                return args, i + 1
        elif ch == "," and depth == 1:
            args.append(text[start:i])
            start = i + 1
    raise MacroError(f"unbalanced parentheses after {text[max(0, open_paren - 20) : open_paren + 1]!r}")


_VAR_NAME = re.compile(r"(?<=\$\{)\w+(?=[}:])|(?<=\$)\w+")


def apply_conditional_all(sql: str, variables: Mapping[str, Variable]) -> str:
    """``$__conditionalAll(phrase, $var)`` → ``1=1`` when var is All, else ``phrase``."""
    macro = "$__conditionalAll("
    while (idx := sql.rfind(macro)) != -1:
        args, end = _macro_args(sql, idx + len(macro) - 1)
        if len(args) != 2:
            raise MacroError(f"$__conditionalAll takes 2 arguments, got {len(args)}")
        m = _VAR_NAME.search(args[1].strip())
        if not m or m.group(0) not in variables:
            raise MacroError(f"$__conditionalAll names an unknown variable: {args[1].strip()!r}")
        phrase = "1=1" if variables[m.group(0)].is_all() else args[0]
        sql = sql[:idx] + phrase + sql[end:]
    return sql


# --- step 2: template variables (Grafana frontend) ----------------------------------------------

# Grafana's own variable pattern (public/app/features/variables/utils.ts).
_TEMPLATE = re.compile(r"\$(\w+)|\[\[(\w+?)(?::(\w+))?\]\]|\$\{(\w+)(?:\.([^:^}]+))?(?::([^}]+))?\}")


def _format(value: str | list[str], fmt: str | None) -> str:
    values = [value] if isinstance(value, str) else value
    if fmt is None:
        # The ClickHouse plugin's formatter: arrays become 'a','b' (unescaped), scalars stay raw.
        return value if isinstance(value, str) else "'" + "','".join(values) + "'"
    if fmt == "singlequote":
        return ",".join("'" + v.replace("'", "\\'") + "'" for v in values)
    if fmt == "doublequote":
        return ",".join('"' + v.replace('"', '\\"') + '"' for v in values)
    if fmt == "sqlstring":
        return ",".join("'" + v.replace("'", "''") + "'" for v in values)
    if fmt in ("csv", "raw"):
        return ",".join(values)
    if fmt == "pipe":
        return "|".join(values)
    raise MacroError(f"unsupported variable format {fmt!r}")


def apply_variables(sql: str, variables: Mapping[str, Variable], time_range: TimeRange) -> str:
    """Interpolate template variables the way Grafana's templateSrv does for this datasource."""
    from_ms = int(time_range.start.timestamp() * 1000)
    to_ms = int(time_range.end.timestamp() * 1000)
    builtins = {
        "__interval": f"{int(time_range.interval_s)}s",
        "__interval_ms": str(int(time_range.interval_s * 1000)),
        "__from": str(from_ms),
        "__to": str(to_ms),
        "__range_s": str((to_ms - from_ms) // 1000),
    }

    def repl(m: re.Match[str]) -> str:
        name = m.group(1) or m.group(2) or m.group(4)
        fmt = m.group(3) or m.group(6)
        if name in builtins:
            return builtins[name]
        if name in variables:
            var = variables[name]
            if var.is_all() and var.all_value is not None:
                return var.all_value  # Grafana inserts a custom all value unformatted
            return _format(var.current(), fmt)
        if name.startswith("__"):
            return m.group(0)  # a backend macro: left for step 3
        raise MacroError(f"unknown template variable ${name}")

    return _TEMPLATE.sub(repl, sql)


# --- step 3: backend macros (plugin pkg/macros) -------------------------------------------------


def _dt(ts: datetime) -> str:
    return f"toDateTime({int(ts.timestamp())})"


def _dt64(ts: datetime) -> str:
    return f"fromUnixTimestamp64Milli({int(ts.timestamp() * 1000)})"


def _date(ts: datetime) -> str:
    return f"toDate('{ts.astimezone(UTC).strftime('%Y-%m-%d')}')"


def _one(name: str, args: list[str]) -> str:
    if len(args) != 1 or not args[0].strip():
        raise MacroError(f"$__{name} expects 1 argument, received {len(args)}")
    return args[0].strip()


def _expand_macro(name: str, args: list[str] | None, tr: TimeRange) -> str:
    a = args or []
    secs = max(int(tr.interval_s), 1)
    if name == "fromTime":
        return _dt(tr.start)
    if name == "toTime":
        return _dt(tr.end)
    if name == "fromTime_ms":
        return _dt64(tr.start)
    if name == "toTime_ms":
        return _dt64(tr.end)
    if name == "interval_s":
        return str(secs)
    if name == "timeFilter":
        c = _one(name, a)
        return f"{c} >= {_dt(tr.start)} AND {c} <= {_dt(tr.end)}"
    if name == "timeFilter_ms":
        c = _one(name, a)
        return f"{c} >= {_dt64(tr.start)} AND {c} <= {_dt64(tr.end)}"
    if name == "dateFilter":
        c = _one(name, a)
        return f"{c} >= {_date(tr.start)} AND {c} <= {_date(tr.end)}"
    if name in ("dateTimeFilter", "dt"):
        if len(a) != 2:
            raise MacroError(f"$__{name} expects 2 arguments, received {len(a)}")
        d, t = a[0].strip(), a[1].strip()
        return (
            f"({d} >= {_date(tr.start)} AND {d} <= {_date(tr.end)}) AND "
            f"({t} >= {_dt(tr.start)} AND {t} <= {_dt(tr.end)})"
        )
    if name == "timeInterval":
        return f"toStartOfInterval(toDateTime({_one(name, a)}), INTERVAL {secs} second)"
    if name == "timeInterval_ms":
        ms = max(int(tr.interval_s * 1000), 1)
        return f"toStartOfInterval(toDateTime64({_one(name, a)}, 3), INTERVAL {ms} millisecond)"
    raise MacroError(f"unknown macro $__{name}")


_MACRO = re.compile(r"\$__(\w+)")


def apply_macros(sql: str, time_range: TimeRange) -> str:
    """Expand the plugin's backend macros."""
    out: list[str] = []
    pos = 0
    while (m := _MACRO.search(sql, pos)) is not None:
        out.append(sql[pos : m.start()])
        end = m.end()
        args: list[str] | None = None
        if end < len(sql) and sql[end] == "(":
            args, end = _macro_args(sql, end)
        out.append(_expand_macro(m.group(1), args, time_range))
        pos = end
    out.append(sql[pos:])
    return "".join(out)


def expand(sql: str, time_range: TimeRange, variables: Mapping[str, Variable] | None = None) -> str:
    """The SQL ClickHouse receives for a panel query, given the dashboard's state."""
    variables = variables or {}
    sql = apply_conditional_all(sql, variables)
    sql = apply_variables(sql, variables, time_range)
    return apply_macros(sql, time_range)


def referenced_variables(sql: str) -> set[str]:
    """Names of template variables a query refers to (built-ins and macros excluded)."""
    names = set()
    for m in _TEMPLATE.finditer(sql):
        name = m.group(1) or m.group(2) or m.group(4)
        if not name.startswith("__"):
            names.add(name)
    return names
