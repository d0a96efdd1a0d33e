"""A timer heap with lazy cancellation: the owner re-checks each popped entry against its state."""

from __future__ import annotations

import heapq


class TimerHeap:
    """(due, key) pairs; ``pop_due`` yields keys whose due time is at or before the watermark.

    Rescheduling pushes a new entry; stale ones are popped later and ignored by the caller, who
    compares the popped due time with the one recorded in its state.
    """

    __slots__ = ("_heap",)

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []

    def push(self, due: int, key: str) -> None:
        """Schedule ``key`` at event time ``due`` (microseconds)."""
        heapq.heappush(self._heap, (due, key))

    def pop_due(self, watermark: int) -> list[tuple[int, str]]:
        """Every entry due at or before the watermark, in due order."""
        heap = self._heap
        out: list[tuple[int, str]] = []
        while heap and heap[0][0] <= watermark:
            out.append(heapq.heappop(heap))
        return out

    def pop(self) -> tuple[int, str]:
        """The earliest entry, removed."""
        return heapq.heappop(self._heap)

    def next_due(self) -> int | None:
        """The earliest due time, if any."""
        return self._heap[0][0] if self._heap else None

    def __len__(self) -> int:
        return len(self._heap)

    def clear(self) -> None:
        self._heap.clear()
