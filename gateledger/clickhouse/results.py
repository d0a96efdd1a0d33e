"""Query results in plain Python/JSON form, the same whether they came from chDB, a server or the stack."""

from __future__ import annotations

import threading
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from ipaddress import IPv4Address, IPv6Address
from typing import Any
from uuid import UUID


@dataclass
class QueryResult:
    columns: list[str]
    types: list[str]
    rows: list[list[Any]]

    def to_json(self) -> dict[str, Any]:
        """JSON-safe form: times as RFC 3339, Decimals and other exact types as strings."""
        return {"columns": self.columns, "types": self.types, "rows": [[jsonable(v) for v in r] for r in self.rows]}

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueryResult:
        return cls(list(data["columns"]), list(data["types"]), [list(r) for r in data["rows"]])


def jsonable(v: Any) -> Any:
    """A value JSON can carry without losing precision."""
    if v is None or isinstance(v, bool | int | str):
        return v
    if isinstance(v, float):
        return v
    if isinstance(v, datetime):
        # clickhouse-connect returns UTC columns as naive datetimes: say so.
        return v.isoformat() + "Z" if v.tzinfo is None else v.isoformat()
    if isinstance(v, Decimal):
        return format(v, "f")  # never 1E-12: exact and plain
    if isinstance(v, date | UUID | IPv4Address | IPv6Address):
        return str(v)
    if isinstance(v, bytes):
        return v.decode("utf-8", "backslashreplace")
    if isinstance(v, dict):
        return {str(k): jsonable(x) for k, x in v.items()}
    if isinstance(v, list | tuple | set):
        return [jsonable(x) for x in v]
    return str(v)


class QueryRunner:
    """Runs queries on a client with server-side parameter binding, one at a time."""

    def __init__(self, client: Any) -> None:
        self.client = client
        self._lock = threading.Lock()

    def run(self, sql: str, parameters: dict[str, Any] | None = None, settings: dict[str, Any] | None = None) -> QueryResult:
        """Execute; ``{name:Type}`` placeholders are bound by ClickHouse, never interpolated here."""
        with self._lock:
            res = self.client.query(sql, parameters=parameters or None, settings=settings or None)
        return QueryResult(
            list(res.column_names),
            [t.name for t in res.column_types],
            [list(r) for r in res.result_rows],
        )
