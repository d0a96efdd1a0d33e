"""Turning Kafka messages into ClickHouse rows, driven by the table's own schema.

The sink reads each table's columns from ClickHouse and maps JSON fields to columns by name,
converting per column type. A new column therefore needs only a migration, and a message that
cannot be converted is a row error (dead letter), never a crash.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal, InvalidOperation
from typing import Any

from gateledger import jsonutil
from gateledger.contracts.events import OUTPUT_MODELS
from gateledger.tables import Table
from gateledger.topics import RAW_TOPICS, Topic

# Which table each topic lands in.
TOPIC_TABLES: dict[Topic, str] = {t: Table.RAW_EVENTS for t in RAW_TOPICS}
TOPIC_TABLES.update({m.topic: m.table for m in OUTPUT_MODELS})

# Columns filled from the Kafka message rather than its payload.
KAFKA_COLUMNS = ("kafka_topic", "kafka_partition", "kafka_offset")


class RowError(ValueError):
    """A message that cannot become a row of its table."""


Converter = Callable[[Any], Any]


def _strip(type_name: str, wrapper: str) -> str | None:
    if type_name.startswith(wrapper + "(") and type_name.endswith(")"):
        return type_name[len(wrapper) + 1 : -1]
    return None


def _to_str(v: Any) -> str:
    if v is None:
        return ""
    if isinstance(v, str):
        return v
    if isinstance(v, dict | list):
        return jsonutil.dumps_str(v)
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def to_datetime(v: Any) -> datetime:
    """A timezone-aware UTC datetime from RFC 3339 text, epoch seconds or a datetime; raises RowError."""
    if isinstance(v, datetime):
        ts = v
    elif isinstance(v, str) and v:
        try:
            ts = datetime.fromisoformat(v)
        except ValueError as exc:
            raise RowError(f"bad time {v!r}") from exc
    elif isinstance(v, int | float) and not isinstance(v, bool):
        ts = datetime.fromtimestamp(v, UTC)
    else:
        raise RowError(f"bad time {v!r}")
    return ts.replace(tzinfo=UTC) if ts.tzinfo is None else ts.astimezone(UTC)


def _to_decimal(v: Any) -> Decimal:
    if isinstance(v, float):
        # Money never travels as a float; refuse rather than silently round.
        raise RowError(f"refusing float {v!r} for a Decimal column")
    try:
        return Decimal(str(v if v is not None else 0))
    except InvalidOperation as exc:
        raise RowError(f"bad decimal {v!r}") from exc


def _to_int(v: Any) -> int:
    if v is None:
        return 0
    if isinstance(v, bool):
        return int(v)
    if isinstance(v, int):
        return v
    if isinstance(v, str) and re.fullmatch(r"-?\d+", v.strip()):
        return int(v)
    if isinstance(v, float) and v.is_integer():
        return int(v)
    raise RowError(f"bad integer {v!r}")


def _to_bool(v: Any) -> bool:
    if isinstance(v, bool):
        return v
    if v in (None, 0, "", "false", "0"):
        return False
    if v in (1, "true", "1"):
        return True
    raise RowError(f"bad boolean {v!r}")


def converter_for(type_name: str) -> Converter:
    """A value converter for a ClickHouse column type name."""
    inner = _strip(type_name, "LowCardinality")
    if inner is not None:
        return converter_for(inner)
    inner = _strip(type_name, "Nullable")
    if inner is not None:
        conv = converter_for(inner)
        return lambda v: None if v is None else conv(v)
    inner = _strip(type_name, "Array")
    if inner is not None:
        conv = converter_for(inner)

        def to_array(v: Any) -> list[Any]:
            if v is None:
                return []
            if not isinstance(v, list):
                raise RowError(f"expected a list, got {type(v).__name__}")
            return [conv(x) for x in v]

        return to_array
    if type_name.startswith("Map("):

        def to_map(v: Any) -> dict[str, str]:
            if v is None:
                return {}
            if not isinstance(v, dict):
                raise RowError(f"expected an object, got {type(v).__name__}")
            return {str(k): _to_str(x) for k, x in v.items()}

        return to_map
    if type_name in ("String",) or type_name.startswith("FixedString") or type_name.startswith("Enum"):
        return _to_str
    if type_name.startswith("DateTime") or type_name == "Date":
        return to_datetime
    if type_name.startswith("Decimal"):
        return _to_decimal
    if type_name.startswith(("Int", "UInt")):
        return _to_int
    if type_name.startswith("Float"):
        return lambda v: float(v or 0)
    if type_name == "Bool":
        return _to_bool
    # JSON, Dynamic, Variant...: let the driver take it as text.
    return _to_str


@dataclass(frozen=True)
class Column:
    name: str
    type_name: str
    has_default: bool


@dataclass
class TableMapping:
    """How messages become rows of one table."""

    table: str
    columns: list[Column]

    def __post_init__(self) -> None:
        self.insert_columns = [c for c in self.columns if not (c.has_default and c.name not in KAFKA_COLUMNS)]
        self.column_names = [c.name for c in self.insert_columns]
        self.type_names = [c.type_name for c in self.insert_columns]
        self._convs = [converter_for(c.type_name) for c in self.insert_columns]

    def to_row(self, value: dict[str, Any], topic: str, partition: int, offset: int) -> list[Any]:
        """One row; raises RowError when the message does not fit the table."""
        if not isinstance(value, dict):
            raise RowError(f"expected a JSON object, got {type(value).__name__}")
        kafka = {"kafka_topic": topic, "kafka_partition": partition, "kafka_offset": offset}
        row = []
        for col, conv in zip(self.insert_columns, self._convs, strict=True):
            # Kafka coordinates come from the message unless the payload names its own (dead letters).
            v = value[col.name] if col.name in value else kafka.get(col.name)
            try:
                row.append(conv(v))
            except RowError as exc:
                raise RowError(f"{self.table}.{col.name}: {exc}") from None
            except (TypeError, ValueError, OverflowError) as exc:
                raise RowError(f"{self.table}.{col.name}: {exc}") from None
        return row


def describe(client: Any, database: str, table: str) -> TableMapping:
    """The mapping for a table, from ClickHouse's own description of it."""
    rows = client.query(
        "SELECT name, type, default_kind FROM system.columns WHERE database = {db:String} AND table = {t:String}"
        " ORDER BY position",
        parameters={"db": database, "t": table},
    ).result_rows
    if not rows:
        raise RuntimeError(f"table {database}.{table} does not exist: run `gateledger migrate`")
    return TableMapping(table, [Column(r[0], r[1], bool(r[2])) for r in rows])
