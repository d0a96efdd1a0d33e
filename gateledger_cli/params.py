"""``gateledger sql -p NAME=VALUE``: command-line text to query parameters that ClickHouse binds itself.

Scalars travel as the text given (ClickHouse parses it as the placeholder's type). Composite types
(``Array``, ``Map``, ``Tuple``) take JSON on the command line (``-p ids='["a","b"]'``) and become
Python values the driver serialises; a ``Nullable`` placeholder takes ``\\N`` for NULL.
"""

from __future__ import annotations

import re
from typing import Any

from gateledger import jsonutil

_PLACEHOLDER = re.compile(r"\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*:\s*([^{}]+?)\s*\}")
_COMPOSITE = ("Array(", "Map(", "Tuple(")


class ParamError(ValueError):
    """A parameter that cannot be bound as written."""


def placeholder_types(sql: str) -> dict[str, str]:
    """name -> declared type of each ``{name:Type}`` in the query."""
    return {m.group(1): m.group(2) for m in _PLACEHOLDER.finditer(sql)}


def _strip_wrappers(type_name: str) -> tuple[str, bool]:
    nullable = False
    for wrapper in ("LowCardinality(", "Nullable("):
        if type_name.startswith(wrapper) and type_name.endswith(")"):
            nullable |= wrapper == "Nullable("
            type_name = type_name[len(wrapper) : -1]
    return type_name, nullable


def bind_params(sql: str, pairs: list[str]) -> dict[str, Any]:
    """Parameters from ``NAME=VALUE`` strings, typed by the query's placeholders."""
    types = placeholder_types(sql)
    bound: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name:
            raise ParamError(f"bad --param {pair!r}: want NAME=VALUE")
        base, nullable = _strip_wrappers(types.get(name, "String"))
        if nullable and value == "\\N":
            bound[name] = None
        elif base.startswith(_COMPOSITE):
            try:
                parsed = jsonutil.loads(value)
            except jsonutil.JSONDecodeError as exc:
                raise ParamError(f"--param {name}: {base} wants JSON (e.g. '[\"a\",\"b\"]'): {exc}") from None
            if base.startswith("Map(") and not isinstance(parsed, dict):
                raise ParamError(f"--param {name}: {base} wants a JSON object")
            if not base.startswith("Map(") and not isinstance(parsed, list):
                raise ParamError(f"--param {name}: {base} wants a JSON array")
            bound[name] = parsed if not base.startswith("Tuple(") else tuple(parsed)
        else:
            bound[name] = value
    return bound
