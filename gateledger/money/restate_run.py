"""`gateledger costs restate`: read the latest cost rows of a time range from ClickHouse, reprice them
with the current catalog (``restate.restate``), publish the new versions to ``cost.ledger``.

The rows go through Kafka like any cost row: the sink keeps every version (history) and the
budget stage applies them with the same code, replacing each row's previous amount in its period,
so the affected periods are recomputed and newly crossed thresholds fire (late).
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import Iterable
from datetime import datetime
from typing import Any

from gateledger.clock import to_utc
from gateledger.contracts.events import CostEntry
from gateledger.kafka import make_producer, resolve
from gateledger.settings import Settings
from gateledger.tables import newest
from gateledger.topics import Topic, topic_name

_IDENT = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")
_FIELDS = [f for f in CostEntry.model_fields]
_OPTIONAL_STR = {name for name, f in CostEntry.model_fields.items() if f.annotation == (str | None)}


def latest_rows_query(database: str, start: datetime, end: datetime) -> tuple[str, dict[str, Any]]:
    """SQL for the latest version of every cost row with event time in ``[start, end)`` (all columns as text)."""
    if not _IDENT.match(database):
        raise ValueError(f"bad database name {database!r}")
    cols = ", ".join(f"toString(`{f}`) AS `{f}`" for f in _FIELDS)
    in_range = "time >= {start:DateTime64(6, 'UTC')} AND time < {end:DateTime64(6, 'UTC')}"
    picked = ", ".join(f"`{f}`" for f in _FIELDS if f != "id")
    sql = f"SELECT {cols} FROM {newest(f'`{database}`.{CostEntry.table}', picked, in_range)}"
    fmt = "%Y-%m-%d %H:%M:%S.%f"
    return sql, {"start": to_utc(start).strftime(fmt), "end": to_utc(end).strftime(fmt)}


def rows_to_costs(columns: list[str], rows: Iterable[Iterable[Any]]) -> list[CostEntry]:
    """Cost rows back from their stored text (empty strings of optional fields are None again)."""
    out = []
    for row in rows:
        data = dict(zip(columns, row, strict=True))
        for k in _OPTIONAL_STR:
            if data.get(k) == "":
                data[k] = None
        out.append(CostEntry.model_validate(data))
    return out


def read_latest(querier: Any, database: str, start: datetime, end: datetime) -> list[CostEntry]:
    """The latest version of each cost row in the range, through a querier (``clickhouse.access``)."""
    sql, params = latest_rows_query(database, start, end)
    result = querier.run(sql, params)
    return rows_to_costs(list(result.columns), result.rows)


async def publish_costs(settings: Settings, rows: list[CostEntry]) -> None:
    """Publish cost rows to ``cost.ledger`` (key = row id), waiting for every acknowledgement."""
    if not rows:
        return
    target = resolve(settings.kafka, settings.core)
    producer = make_producer(settings.kafka, target, linger_ms=5)
    await producer.start()
    try:
        topic = topic_name(Topic.COST_LEDGER, target.topic_prefix)
        futures = [await producer.send(topic, key=r.id.encode(), value=r.model_dump_json().encode()) for r in rows]
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
