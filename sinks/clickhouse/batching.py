"""Cutting one partition's messages into batches: by size and time, or exactly as an earlier run did.

A batch's deduplication token is its topic/partition/offset range. A batch re-read after a crash
is only recognised by ClickHouse if it has the same range, so the ranges an earlier run recorded
(``plan``: first offset -> (last offset, flush), from the batch log) are reproduced exactly: a batch
that starts at a planned offset is "pinned" and ends at the planned last offset, whatever the size
and time limits say, and a free batch is cut short before the next planned start. A pinned batch
keeps the flush it was recorded with: it lands with that flush's other batches again.
"""

from __future__ import annotations

import hashlib
import time
from collections import deque
from dataclasses import dataclass, field
from typing import Any

from aiokafka import TopicPartition


@dataclass
class Batch:
    """Messages of one partition, landed together and committed together."""

    tp: TopicPartition
    table: str
    first_offset: int
    pinned_last: int | None = None  # set when re-forming a batch recorded by an earlier run
    flush: str = ""  # of a pinned batch: the recorded flush it belongs to ('' = landed alone)
    last_offset: int = -1
    lines: list[bytes] = field(default_factory=list)  # JSONEachRow lines, one per good message
    offsets: list[int] = field(default_factory=list)  # offset of each line
    raws: list[bytes] = field(default_factory=list)  # the message each line came from (for dead letters)
    objs: list[dict[str, Any]] = field(default_factory=list)  # parsed messages (rolled-up tables only)
    bad: list[tuple[int, bytes, str, str]] = field(default_factory=list)  # (offset, raw, reason, error)
    nbytes: int = 0
    opened_at: float = field(default_factory=time.monotonic)
    # Kafka timestamp of the first message: the same on every re-read of these offsets, different
    # once the topic was re-created (or a memory-only broker restarted) and offsets began again at 0.
    first_timestamp: int | None = None

    def __len__(self) -> int:
        return len(self.lines) + len(self.bad)

    @property
    def token(self) -> str:
        """The deduplication token: the same range of the same messages always gives the same token.

        The first message's timestamp is part of it: a range alone would make ClickHouse drop, as a
        duplicate, a new batch at offsets a re-created topic reuses (silent loss).
        """
        ts = "" if self.first_timestamp is None else f"@{self.first_timestamp}"
        return f"{self.tp.topic}:{self.tp.partition}:{self.first_offset}-{self.last_offset}{ts}"

    @property
    def replay(self) -> bool:
        """True when this batch re-forms a range recorded before (its intent is already logged)."""
        return self.pinned_last is not None

    def complete(self) -> bool:
        """A pinned batch is complete once its planned last offset is in."""
        return self.pinned_last is not None and self.last_offset >= self.pinned_last


class PartitionBuffer:
    """The open batch and the closed batches (oldest first) of one partition."""

    def __init__(
        self, tp: TopicPartition, table: str, plan: dict[int, tuple[int, str]], max_rows: int, max_bytes: int
    ) -> None:
        self.tp = tp
        self.table = table
        self.plan = dict(plan)
        self.max_rows = max_rows
        self.max_bytes = max_bytes
        self.open: Batch | None = None
        self.closed: deque[Batch] = deque()

    def batch_for(self, offset: int) -> Batch:
        """The batch a message at ``offset`` belongs to (closing the open one where a range ends)."""
        b = self.open
        if b is not None:
            if b.pinned_last is not None and offset > b.pinned_last:
                self._close()  # the planned last message is gone (compaction): end the range here
            elif b.pinned_last is None and offset in self.plan and len(b):
                self._close()  # the next recorded range starts here
        if self.open is None:
            pinned, flush = self.plan.pop(offset, (None, ""))
            self.open = Batch(self.tp, self.table, first_offset=offset, pinned_last=pinned, flush=flush)
        return self.open

    def added(self, batch: Batch, offset: int, size: int) -> None:
        """Account for a message just added; close the batch when it is full or its range is complete."""
        batch.last_offset = offset
        batch.nbytes += size
        if batch.pinned_last is not None:
            if batch.complete():
                self._close()
        elif len(batch) >= self.max_rows or batch.nbytes >= self.max_bytes:
            self._close()

    def close_if_due(self, now: float, max_wait_s: float) -> None:
        """Close the open batch when it waited long enough and no closed batch of the partition waits.

        A pinned batch never closes on time: cut short, its token would differ from the recorded
        range's. It closes when its last offset arrives, or when a later offset shows it never will.
        While an earlier batch still waits for its flush, the open one keeps growing (up to the size
        limits) instead of being cut every ``max_wait_s``: a flush takes one batch per partition, so
        time-cut batches of a sink that fell behind would stay as small as when it kept up, each
        costing a flush's fixed price (its parts, the rollup views' parts, the look-ups), and the
        backlog could never shrink. This way a slower flush lands a larger batch.
        """
        b = self.open
        if b is None or not len(b) or b.pinned_last is not None or self.closed:
            return
        if now - b.opened_at >= max_wait_s:
            self._close()

    def close_free(self) -> None:
        """Close the open batch now unless it is pinned (shutdown: nothing more arrives)."""
        if self.open is not None and self.open.pinned_last is None:
            self._close()

    def _close(self) -> None:
        if self.open is not None and len(self.open):
            self.closed.append(self.open)
        self.open = None

    def peek_ready(self) -> Batch | None:
        """The oldest closed batch, if any, left in place."""
        return self.closed[0] if self.closed else None

    def pop_ready(self) -> Batch | None:
        """The oldest closed batch, if any."""
        return self.closed.popleft() if self.closed else None

    def rows(self) -> int:
        """Messages buffered in this partition."""
        return sum(len(b) for b in self.closed) + (len(self.open) if self.open else 0)

    def bytes(self) -> int:
        """Bytes buffered in this partition."""
        return sum(b.nbytes for b in self.closed) + (self.open.nbytes if self.open else 0)


def flush_token_of(table: str, tokens: list[str]) -> str:
    """The deduplication token of a flush of these batch tokens (in landing order): a batch's own
    when alone, else one derived from all of them (so it differs for every other set of batches)."""
    if len(tokens) == 1:
        return tokens[0]
    return f"{table}#{hashlib.sha256('|'.join(tokens).encode()).hexdigest()[:32]}"


@dataclass
class Flush:
    """Batches of one table landed together under one token."""

    table: str
    batches: list[Batch]  # in landing order: by topic, partition, first offset
    owned: list[Batch]  # taken from this sink's buffers: committed once landed (the others were re-read)
    flush_id: str  # recorded with the ranges; '' for a batch landed alone
    fresh: bool  # False when re-formed from the batch log (already recorded)

    @property
    def token(self) -> str:
        """The deduplication token of every insert of the flush (with a step suffix)."""
        return self.flush_id or self.batches[0].token

    def accepted(self, refused: dict[int, str]) -> list[tuple[Batch, list[dict[str, Any]]]]:
        """Per batch, the parsed messages whose rows ClickHouse accepted (``refused``: by index in the
        flush's rows, as its insert numbered them)."""
        out, base = [], 0
        for b in self.batches:
            out.append((b, [obj for i, obj in enumerate(b.objs) if base + i not in refused]))
            base += len(b.lines)
        return out

    def letters(self, refused: dict[int, str], reason: str) -> list[tuple[TopicPartition, int, bytes, str, str]]:
        """(partition, offset, message, reason, error) of every message of the flush that became no row."""
        out: list[tuple[TopicPartition, int, bytes, str, str]] = []
        base = 0
        for b in self.batches:
            out += [(b.tp, b.offsets[i], b.raws[i], reason, refused[base + i]) for i in range(len(b.lines))
                    if base + i in refused]
            out += [(b.tp, off, raw, why, err) for off, raw, why, err in b.bad]
            base += len(b.lines)
        return out
