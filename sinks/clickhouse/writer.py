"""Talking to ClickHouse for the sink: inserts with deduplication tokens, error classes, isolating bad rows.

Every insert is synchronous (``async_insert=0``: chDB turns async inserts on by default, and the sink
batches itself) and deduplicated by a token derived from the batch's topic/partition/offset range,
also inside dependent materialized views. Errors are classified once here: bad values are
``RejectedRows`` (never retried; bisection finds the rows), unavailability is
``RetryableInsertError`` (retried with backoff by the service for as long as it lasts), and an error
of no known kind is ``UnknownInsertError`` (retried a bounded number of times, then its rows are
isolated and dead-lettered like rejected ones).

Fault injection: ``insert_fn`` and ``query_fn`` replace the calls made on a client, so tests can make
ClickHouse fail for a while around the real engine.
"""

from __future__ import annotations

import logging
import queue
import re
import time
from collections.abc import Callable, Sequence
from typing import Any

from clickhouse_connect.driver.client import Client
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError

from sinks.clickhouse import telemetry

log = logging.getLogger(__name__)

# ClickHouse error codes that mean "these values are bad", not "try again later".
_DATA_ERROR_CODES = {
    6, 26, 27, 32, 33, 38, 41, 53, 69, 70, 72, 117, 131, 190, 321, 407, 467, 469, 691,
}
# Codes that mean "ClickHouse cannot take anything right now" (overload, network, replicas, a table or
# database an operator must restore): retried for as long as it takes, nothing may be dropped.
_TRANSIENT_CODES = {
    60, 81, 159, 164, 202, 203, 209, 210, 236, 241, 242, 252, 279, 285, 319, 394, 425, 999, 1000,
}
_CODE = re.compile(r"Code:\s*(\d+)")

# Settings of every sink insert (JSONEachRow parsed by ClickHouse, mapped to columns by name).
INSERT_SETTINGS: dict[str, Any] = {
    "async_insert": 0,
    "insert_deduplicate": 1,
    "deduplicate_blocks_in_dependent_materialized_views": 1,
    "input_format_skip_unknown_fields": 1,
    "date_time_input_format": "best_effort",
    "input_format_json_read_objects_as_strings": 1,
    "input_format_json_read_arrays_as_strings": 1,
    "input_format_json_read_numbers_as_strings": 1,
    "input_format_json_read_bools_as_strings": 1,
    "input_format_null_as_default": 1,
}


class RetryableInsertError(RuntimeError):
    """ClickHouse is unavailable or overloaded: retry the same batch later."""


class UnknownInsertError(RetryableInsertError):
    """An error of no known kind: retried a bounded number of times, then treated as bad rows (a
    poison row must not stall its partition forever)."""


class RejectedRows(ValueError):
    """ClickHouse refused these values; retrying cannot help."""


def classify(exc: BaseException) -> type[Exception]:
    """RejectedRows for bad data, RetryableInsertError for unavailability, UnknownInsertError otherwise."""
    if isinstance(exc, DataError):
        return RejectedRows
    if isinstance(exc, OperationalError):
        return RetryableInsertError  # connection-level: the server is not there
    if isinstance(exc, DatabaseError):
        m = _CODE.search(str(exc))
        code = int(m.group(1)) if m else None
        if code in _DATA_ERROR_CODES:
            return RejectedRows
        return RetryableInsertError if code in _TRANSIENT_CODES else UnknownInsertError
    if isinstance(exc, TypeError | ValueError | OverflowError):
        return RejectedRows
    return RetryableInsertError


InsertFn = Callable[[Client, str, bytes, dict[str, Any]], None]
QueryFn = Callable[[Client, str, dict[str, Any]], list[tuple[Any, ...]]]


def client_insert(client: Client, table: str, body: bytes, settings: dict[str, Any]) -> None:
    """The real insert: JSONEachRow lines, parsed and mapped by ClickHouse."""
    client.raw_insert(table, None, body, settings=settings, fmt="JSONEachRow")


def client_query(client: Client, sql: str, parameters: dict[str, Any]) -> list[tuple[Any, ...]]:
    """The real query, parameters bound by ClickHouse."""
    return list(client.query(sql, parameters=parameters or None).result_rows)


class Writer:
    """Inserts and queries through a small pool of clients (one for chDB, whose handles are not thread-safe)."""

    def __init__(
        self,
        clients: Client | Sequence[Client],
        database: str,
        insert_fn: InsertFn | None = None,
        query_fn: QueryFn | None = None,
    ) -> None:
        pool = [clients] if isinstance(clients, Client) else list(clients)
        if not pool:
            raise ValueError("a Writer needs at least one client")
        self.database = database
        self.concurrency = len(pool)
        self._idle: queue.Queue[Client] = queue.Queue()
        for c in pool:
            self._idle.put(c)
        self._insert_fn = insert_fn or client_insert
        self._query_fn = query_fn or client_query

    def _with_client(self, fn: Callable[[Client], Any]) -> Any:
        client = self._idle.get()
        try:
            return fn(client)
        finally:
            self._idle.put(client)

    def qualified(self, table: str) -> str:
        """``database.table``."""
        return f"`{self.database}`.`{table}`"

    def insert(self, table: str, lines: Sequence[bytes], dedup_token: str | None) -> None:
        """Insert once; a repeat with the same token is dropped by ClickHouse. Raises a classified error.

        ``dedup_token=None`` turns deduplication off (for state rows that may legitimately repeat).
        """
        if not lines:
            return
        settings = dict(INSERT_SETTINGS)
        if dedup_token is None:
            settings["insert_deduplicate"] = 0
        else:
            settings["insert_deduplication_token"] = dedup_token
        body = b"\n".join(lines)
        started = time.perf_counter()
        try:
            self._with_client(lambda c: self._insert_fn(c, self.qualified(table), body, settings))
        except Exception as exc:  # classified below: the caller decides retry vs dead letter
            kind = classify(exc)
            raise kind(f"insert into {table} failed: {exc}") from exc
        telemetry.INSERT_LATENCY.labels(table=table).observe(time.perf_counter() - started)
        telemetry.ROWS_INSERTED.labels(table=table).inc(len(lines))
        telemetry.BATCH_ROWS.labels(table=table).observe(len(lines))

    def insert_isolating(self, table: str, lines: Sequence[bytes], token: str,
                         unknown_is_rejection: bool = False) -> list[tuple[int, str]]:
        """Insert, and if ClickHouse rejects values, bisect so every good row lands.

        Returns (row index, error) of the refused rows. Sub-batches get derived tokens, and the same
        rows are refused the same way on a replay, so the splits repeat and stay deduplicated.
        ``unknown_is_rejection``: an UnknownInsertError (after the caller's bounded retries) isolates
        rows too.
        """
        refusals: tuple[type[Exception], ...] = (RejectedRows, UnknownInsertError) if unknown_is_rejection \
            else (RejectedRows,)
        try:
            self.insert(table, lines, token)
            return []
        except refusals as exc:
            if len(lines) == 1:
                return [(0, str(exc.__cause__ or exc))]
        mid = len(lines) // 2
        bad = self.insert_isolating(table, lines[:mid], f"{token}/a", unknown_is_rejection)
        bad += [(i + mid, e) for i, e in self.insert_isolating(table, lines[mid:], f"{token}/b", unknown_is_rejection)]
        return bad

    def query(self, sql: str, parameters: dict[str, Any] | None = None) -> list[tuple[Any, ...]]:
        """Rows of a query; any failure is retryable (the sink's own queries are never malformed by data)."""
        try:
            return self._with_client(lambda c: self._query_fn(c, sql, parameters or {}))
        except Exception as exc:
            raise RetryableInsertError(f"query failed: {exc}") from exc
