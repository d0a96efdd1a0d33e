"""A client-shaped adapter over a running sink's /query endpoint (for processes that cannot open its chDB path)."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import Any


def _typed(value: Any, type_name: str) -> Any:
    """The Python value a clickhouse-connect client would have returned."""
    inner = type_name
    for wrapper in ("LowCardinality(", "Nullable(", "SimpleAggregateFunction(sum, "):
        if inner.startswith(wrapper):
            inner = inner[len(wrapper) : -1]
    if value is None:
        return None
    if inner.startswith("Decimal"):
        return Decimal(value)
    if inner.startswith("DateTime"):
        return datetime.fromisoformat(value)
    if inner == "Date":
        return date.fromisoformat(value)
    return value


def auth_headers() -> dict[str, str]:
    """JSON and the bearer token the sink of this test's data directory made."""
    from gateledger.clickhouse.query_token import read_query_token
    from gateledger.settings import Settings

    token = read_query_token(Settings().core.data_dir) or ""
    return {"Content-Type": "application/json", "Authorization": f"Bearer {token}"}


@dataclass
class _Result:
    result_rows: list[tuple[Any, ...]]


class StackClient:
    """``.query(sql, parameters=...)`` through POST /query; parameters are bound by ClickHouse in the sink."""

    def __init__(self, base_url: str) -> None:
        self.url = base_url.rstrip("/") + "/query"
        self.headers = auth_headers()

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> _Result:
        body = json.dumps({"sql": sql, "parameters": parameters or {}}).encode()
        req = urllib.request.Request(self.url, data=body, headers=self.headers)
        with urllib.request.urlopen(req, timeout=120) as resp:  # noqa: S310 - loopback only
            payload = json.loads(resp.read())
        types = payload["types"]
        return _Result([tuple(_typed(v, t) for v, t in zip(row, types, strict=True)) for row in payload["rows"]])
