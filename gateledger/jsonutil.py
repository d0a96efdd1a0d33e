"""JSON encoding used everywhere: orjson, Decimals as strings, canonical form for hashing."""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any

import orjson

JSONDecodeError = orjson.JSONDecodeError


def _default(obj: Any) -> Any:
    if isinstance(obj, Decimal):
        # Money and ratios travel as strings: no float ever touches them.
        return str(obj)
    if isinstance(obj, set | frozenset):
        return sorted(obj)
    if isinstance(obj, bytes):
        return obj.decode("utf-8", "backslashreplace")
    if hasattr(obj, "model_dump"):
        return obj.model_dump(mode="json")
    raise TypeError(f"not JSON serializable: {type(obj).__name__}")


def dumps(obj: Any) -> bytes:
    """Compact JSON bytes."""
    return orjson.dumps(obj, default=_default, option=orjson.OPT_UTC_Z)


def dumps_str(obj: Any) -> str:
    """Compact JSON text."""
    return dumps(obj).decode()


def loads(data: bytes | bytearray | memoryview | str) -> Any:
    """Parse JSON; raises JSONDecodeError (a ValueError) on bad input, including invalid UTF-8."""
    return orjson.loads(data)


def canonical_bytes(obj: Any) -> bytes:
    """Sorted-key JSON: equal values give equal bytes, for hashing."""
    return orjson.dumps(obj, default=_default, option=orjson.OPT_SORT_KEYS | orjson.OPT_UTC_Z)


def parse_time(value: Any) -> datetime | None:
    """Parse an RFC 3339 string (or pass a datetime through); None for empty."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        return value
    return datetime.fromisoformat(str(value))
