"""Row counts of gateledger's tables, for summaries and status."""

from __future__ import annotations

from typing import Any

from gateledger.clickhouse.results import QueryResult

# Physical rows per table from active parts: cheap, and close to the truth once merges caught up.
TABLE_ROWS_SQL = """
SELECT t.name AS table, ifNull(p.rows, 0) AS rows
FROM system.tables AS t
LEFT JOIN (
    SELECT table, sum(rows) AS rows FROM system.parts
    WHERE database = {db:String} AND active GROUP BY table
) AS p ON p.table = t.name
WHERE t.database = {db:String} AND t.engine LIKE '%MergeTree%' AND t.name != 'schema_migrations'
  AND NOT startsWith(t.name, '.inner')
ORDER BY t.name
"""


def table_rows(result: QueryResult) -> dict[str, int]:
    """table -> rows from a TABLE_ROWS_SQL result."""
    return {str(r[0]): int(r[1]) for r in result.rows}


def format_counts(counts: dict[str, Any]) -> str:
    """One compact line per table."""
    if not counts:
        return "  (no tables yet)"
    width = max(len(k) for k in counts)
    return "\n".join(f"  {k.ljust(width)}  {v:>12,}" for k, v in counts.items())
