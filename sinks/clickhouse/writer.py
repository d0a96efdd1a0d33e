"""Inserting batches into ClickHouse: deduplication tokens, error classes, isolating bad rows."""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError, ProgrammingError

from sinks.clickhouse import telemetry
from sinks.clickhouse.rows import TableMapping

log = logging.getLogger(__name__)

# ClickHouse error codes that mean "these values are bad", not "try again later".
_DATA_ERROR_CODES = {6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131, 190, 321, 407, 691}
_CODE = re.compile(r"Code:\s*(\d+)")


class RetryableInsertError(RuntimeError):
    """ClickHouse is unavailable or overloaded: retry the same batch later."""


class RejectedRows(ValueError):
    """ClickHouse refused these values; retrying cannot help."""


def classify(exc: BaseException) -> type[Exception]:
    """RejectedRows for bad data, RetryableInsertError for everything else."""
    if isinstance(exc, DataError | TypeError | ValueError | OverflowError):
        return RejectedRows
    if isinstance(exc, DatabaseError):
        m = _CODE.search(str(exc))
        if m and int(m.group(1)) in _DATA_ERROR_CODES:
            return RejectedRows
    if isinstance(exc, OperationalError | ProgrammingError | DatabaseError | OSError):
        return RetryableInsertError
    return RetryableInsertError


InsertFn = Callable[[str, list[list[Any]], list[str], list[str], dict[str, Any]], None]


class Writer:
    """Inserts into one database through one client; serialized, since chDB handles are not thread-safe."""

    def __init__(self, client: Client, database: str, insert_fn: InsertFn | None = None) -> None:
        self.client = client
        self.database = database
        self._lock = threading.Lock()
        self._insert_fn = insert_fn or self._client_insert

    def _client_insert(
        self, table: str, rows: list[list[Any]], names: list[str], types: list[str], settings: dict[str, Any]
    ) -> None:
        self.client.insert(
            f"{self.database}.{table}",
            rows,
            column_names=names,
            column_type_names=types,
            settings=settings,
        )

    def insert(self, mapping: TableMapping, rows: list[list[Any]], dedup_token: str) -> None:
        """Insert once; a repeat with the same token is a no-op in ClickHouse. Raises a classified error."""
        settings = {"insert_deduplication_token": dedup_token, "insert_deduplicate": 1}
        started = time.perf_counter()
        try:
            with self._lock:
                self._insert_fn(mapping.table, rows, mapping.column_names, mapping.type_names, settings)
        except Exception as exc:  # classified below: the caller decides retry vs dead letter
            kind = classify(exc)
            raise kind(f"insert into {mapping.table} failed: {exc}") from exc
        telemetry.INSERT_LATENCY.labels(table=mapping.table).observe(time.perf_counter() - started)
        telemetry.ROWS_INSERTED.labels(table=mapping.table).inc(len(rows))
        telemetry.BATCH_ROWS.labels(table=mapping.table).observe(len(rows))

    def insert_isolating(
        self, mapping: TableMapping, rows: list[list[Any]], token: str
    ) -> list[tuple[int, str]]:
        """Insert, and if ClickHouse rejects the values, bisect to land every good row.

        Returns (row index, error) of the rows that were refused. Sub-batches get derived tokens,
        so a retry after a crash repeats the same splits and stays deduplicated.
        """
        try:
            self.insert(mapping, rows, token)
            return []
        except RejectedRows as exc:
            if len(rows) == 1:
                return [(0, str(exc.__cause__ or exc))]
        mid = len(rows) // 2
        bad = self.insert_isolating(mapping, rows[:mid], f"{token}/a")
        bad += [(i + mid, e) for i, e in self.insert_isolating(mapping, rows[mid:], f"{token}/b")]
        return bad
