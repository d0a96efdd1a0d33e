"""A timer heap with lazy cancellation: the owner re-checks each popped entry against its state.

Most timers fall due in about the order they are pushed (a retention: newest event +
``retention_s``; a merge timeout: event + ``mcp_merge_timeout_s``), out of order only by the
disorder of the events. Those go to a few *lanes*: queues each kept in (due, key) order, 16 bytes
per entry (the due in an ``array('q')``, the key shared with the state) instead of ~96 for a tuple
and an int in a heap. An entry that fits behind no lane's last goes to the heap. Popping takes the
smallest front of the lanes and the heap by (due, key), so entries come out in exactly the order
one heap would give.
"""

from __future__ import annotations

import heapq
from array import array

LANES = 8  # a push tries each lane's tail: enough for the disorder of interleaved interactions
_COMPACT = 4096  # popped lane entries dropped from a lane's front once this many (and half of it)


class _Lane:
    """Entries in (due, key) order; popped from the front."""

    __slots__ = ("due", "key", "head")

    def __init__(self) -> None:
        self.due = array("q")
        self.key: list[str] = []
        self.head = 0

    def front(self) -> tuple[int, str]:
        return self.due[self.head], self.key[self.head]

    def pop(self) -> tuple[int, str]:
        h = self.head
        entry = (self.due[h], self.key[h])
        self.key[h] = ""  # the key goes with the entry (its state may be gone)
        h += 1
        if h == len(self.due):
            del self.due[:]
            self.key.clear()
            h = 0
        elif h >= _COMPACT and 2 * h >= len(self.due):
            del self.due[:h]
            del self.key[:h]
            h = 0
        self.head = h
        return entry


class TimerHeap:
    """(due, key) pairs; ``pop_due`` yields keys whose due time is at or before the watermark.

    Rescheduling pushes a new entry; stale ones are popped later and ignored by the caller, who
    compares the popped due time with the one recorded in its state.
    """

    __slots__ = ("_heap", "_lanes", "_n", "_next")

    def __init__(self) -> None:
        self._heap: list[tuple[int, str]] = []
        self._lanes: list[_Lane] = []
        self._n = 0
        self._next: int | None = None  # the earliest due (read on every watermark move: kept, not sought)

    def push(self, due: int, key: str) -> None:
        """Schedule ``key`` at event time ``due`` (microseconds)."""
        self._n += 1
        if self._next is None or due < self._next:
            self._next = due
        entry = (due, key)
        for lane in self._lanes:
            if not lane.due or entry >= (lane.due[-1], lane.key[-1]):
                lane.due.append(due)
                lane.key.append(key)
                return
        if len(self._lanes) < LANES:
            lane = _Lane()
            lane.due.append(due)
            lane.key.append(key)
            self._lanes.append(lane)
            return
        heapq.heappush(self._heap, entry)

    def _first(self) -> tuple[tuple[int, str], _Lane | None] | None:
        """The earliest entry and the lane holding it (None: the heap), if any."""
        best = self._heap[0] if self._heap else None
        where = None
        for lane in self._lanes:
            if lane.due:
                f = lane.front()
                if best is None or f < best:
                    best, where = f, lane
        return None if best is None else (best, where)

    def pop(self) -> tuple[int, str]:
        """The earliest entry, removed."""
        first = self._first()
        if first is None:
            raise IndexError("pop from an empty TimerHeap")
        self._n -= 1
        lane = first[1]
        entry = heapq.heappop(self._heap) if lane is None else lane.pop()
        nxt = self._heap[0][0] if self._heap else None
        for other in self._lanes:
            if other.due and (nxt is None or other.due[other.head] < nxt):
                nxt = other.due[other.head]
        self._next = nxt
        return entry

    def pop_due(self, watermark: int) -> list[tuple[int, str]]:
        """Every entry due at or before the watermark, in due order."""
        out: list[tuple[int, str]] = []
        while (nxt := self.next_due()) is not None and nxt <= watermark:
            out.append(self.pop())
        return out

    def next_due(self) -> int | None:
        """The earliest due time, if any."""
        return self._next

    def __len__(self) -> int:
        return self._n

    def clear(self) -> None:
        self._heap.clear()
        self._lanes.clear()
        self._n = 0
        self._next = None
