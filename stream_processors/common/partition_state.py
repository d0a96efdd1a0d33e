"""The persisted state of one partition of one stage: a key/value mirror with write tracking.

Values are plain JSON-able objects, shared with the faust table's in-memory store (no copy). The
owner flushes writes in three ordered groups — entities, then dedup chunks, then watermarks — onto
one changelog partition, whose order Kafka keeps. A crash part-way through a flush therefore
persists a prefix: a persisted dedup chunk implies its events' entity state is persisted, and a
persisted watermark implies everything before it is, so a replay never sees time run ahead of state.
"""

from __future__ import annotations

from typing import Any

ENTITY, DEDUP, WATERMARK = 0, 1, 2


class PartitionState:
    """Key/value state of one partition with ordered, coalesced writes."""

    def __init__(self, partition: int) -> None:
        self.partition = partition
        self.kv: dict[str, Any] = {}
        self._dirty: tuple[dict[str, None], dict[str, None], dict[str, None]] = ({}, {}, {})

    def get(self, key: str) -> Any:
        return self.kv.get(key)

    def put(self, key: str, value: Any, group: int = ENTITY) -> None:
        """Set (or mark as changed after mutating in place) a value."""
        self.kv[key] = value
        self._dirty[group][key] = None

    def touch(self, key: str, group: int = ENTITY) -> None:
        """Mark a value mutated in place."""
        self._dirty[group][key] = None

    def delete(self, key: str, group: int = ENTITY) -> None:
        if key in self.kv:
            del self.kv[key]
            self._dirty[group][key] = None

    def take_writes(self) -> list[tuple[str, Any]]:
        """Changed keys with their values (None = deleted), in flush order; clears the tracking."""
        out: list[tuple[str, Any]] = []
        for group in self._dirty:
            for key in group:
                out.append((key, self.kv.get(key)))
            group.clear()
        return out

    def pending_writes(self) -> int:
        return sum(len(g) for g in self._dirty)
