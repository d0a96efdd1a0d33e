"""SQL fragments the panels share: variable filters and duplicate-free sources.

The base tables are ReplacingMergeTree: until a background merge, a re-delivered row or an older
version of a re-emitted row is still there. Panels therefore never aggregate a base table
directly; they read one of the sources below (newest version per id) or count ``uniqExact(id)``.
Each panel's SQL names its source once, on its FROM line: moving a panel to a rollup or an analyst
view later replaces that one line.
"""

from __future__ import annotations


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
    """The newest version of each id among the rows of ``table`` matching ``conditions``."""
    return (
        f"(SELECT id, {columns} FROM {table} WHERE {where(*conditions)} ORDER BY version DESC LIMIT 1 BY id)"
    )


def first_landed(table: str, columns: str, *conditions: str) -> str:
    """One row per event id of a table without versions (raw_events): the copy that landed first."""
    return (
        f"(SELECT id, {columns} FROM {table} WHERE {where(*conditions)} ORDER BY inserted_at LIMIT 1 BY id)"
    )


# The filters every dashboard applies, by the variable they follow.
TIME = "$__timeFilter(time)"
TENANT = any_of("tenant", "tenant")
