"""What the sink's query endpoint lets through: read-only statements reading only gateledger's data.

Two independent layers, so a gap in one is caught by the other:

1. ClickHouse's own ``readonly = 1`` on every query (no writes, no DDL, no settings changes, and
   no temporary tables), with time and memory limits set in the same request;
2. the statement as ClickHouse itself parses it (``EXPLAIN AST``, never a regex over the text): the
   root must be a reading statement, every table function must be on a short allow list, and no
   function that reads the host or the network (``file``, ``url``, ``s3``, ``remote``,
   ``executable``, chDB's ``python`` ...) may appear anywhere.
"""

from __future__ import annotations

import re
from typing import Any

# Root nodes of EXPLAIN AST that only read.
READING_ROOTS = frozenset({
    "SelectWithUnionQuery", "SelectIntersectExceptQuery", "SelectQuery", "ExplainQuery", "DescribeQuery",
    "ShowTablesQuery", "ShowColumnsQuery", "ExistsTableQuery", "ExistsDatabaseQuery", "ExistsViewQuery",
    "ShowCreateTableQuery", "ShowCreateViewQuery", "ShowCreateDatabaseQuery",
})
# Table functions that generate values and read nothing outside the query itself.
ALLOWED_TABLE_FUNCTIONS = frozenset({"numbers", "numbers_mt", "zeros", "zeros_mt", "values", "generateseries",
                                     "generate_series", "view", "merge"})
# Functions that reach the host, the network or other servers, wherever they appear (some are also
# plain functions: ``SELECT file('/etc/passwd')``).
HOST_FUNCTIONS = frozenset({
    "file", "filecluster", "url", "urlcluster", "s3", "s3cluster", "gcs", "oss", "cosn", "hdfs", "hdfscluster",
    "remote", "remotesecure", "cluster", "clusterallreplicas", "executable", "executablepool", "jdbc", "odbc",
    "mysql", "postgresql", "sqlite", "mongodb", "redis", "azureblobstorage", "azureblobstoragecluster",
    "iceberg", "icebergs3", "deltalake", "hudi", "input", "python", "dictionary", "loop", "fuzzjson", "fuzzquery",
})
_LINE = re.compile(r"^(?P<indent> *)(?P<node>\S+)(?: (?P<name>[^\s(]+))?")


class Refusal(Exception):
    """The statement is not allowed; ``reason`` is the documented reason code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


TABLE_FUNCTIONS_SQL = "SELECT name FROM system.table_functions"


def check_ast(lines: list[str], table_functions: frozenset[str]) -> None:
    """Refuse unless the EXPLAIN AST lines describe a reading statement using no host functions.

    ``table_functions``: the engine's table functions (lower case). A call in a table position naming
    none of them is a parameterized view of gateledger's (``mcp_calls_latest(...)``): allowed.
    """
    parsed = [m for m in (_LINE.match(line) for line in lines) if m]
    if not parsed:
        raise Refusal("not_read_only", "empty statement")
    root = parsed[0]["node"]
    if root not in READING_ROOTS:
        raise Refusal("not_read_only", f"only reading statements are allowed, not {root}")
    for i, m in enumerate(parsed):
        if m["node"] == "Set":
            # ClickHouse ignores SETTINGS in subqueries under readonly, but a caller has no business there.
            raise Refusal("settings", "SETTINGS clauses are not accepted (the endpoint's limits are fixed)")
        if m["node"] != "Function" or not m["name"]:
            continue
        name = m["name"].lower()
        if name in HOST_FUNCTIONS:
            raise Refusal("host_access", f"{m['name']}() reads the host or the network and is not allowed")
        if name in table_functions and name not in ALLOWED_TABLE_FUNCTIONS and _is_table_function(parsed, i):
            raise Refusal("table_function", f"table function {m['name']}() is not allowed")


def _is_table_function(parsed: list[re.Match[str]], i: int) -> bool:
    """A Function node directly under a TableExpression is a table function."""
    indent = len(parsed[i]["indent"])
    for m in reversed(parsed[:i]):
        if len(m["indent"]) < indent:
            return m["node"] == "TableExpression"
    return False


def guarded_settings(timeout_s: float, max_memory_bytes: int) -> dict[str, Any]:
    """The settings of every endpoint query: limits first, then readonly (which freezes them all)."""
    return {
        "max_execution_time": timeout_s,
        "max_memory_usage": max_memory_bytes,
        "readonly": 1,
    }
