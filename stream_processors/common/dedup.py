"""The dedup window: event ids seen in one partition, remembered for a fixed span of event time.

Ids are stored in *chunks*: one state entry per (topic, event-time bucket, batch) holding the ids
first seen in that batch, so a batch of N new events costs one changelog write per bucket, not N.
A chunk is dropped once the topic's watermark passes its bucket's end + the window. The in-memory
index (id -> bucket) is rebuilt from the chunks after a restart or rebalance.

Bound: memory ~ (event rate x (window + bucket)) ids. An event older than watermark - window is
still processed (nothing is dropped) but counted as ``beyond_window``: a duplicate of it may pass.
"""

from __future__ import annotations

from collections import defaultdict


class DedupWindow:
    """Seen event ids of one partition."""

    def __init__(self, window_us: int, bucket_us: int) -> None:
        self.window = window_us
        self.bucket = bucket_us
        self._index: dict[str, int] = {}  # id -> bucket start
        # (topic, bucket start) -> [(chunk key, ids)] holding ids first seen in that bucket
        self._chunks: dict[tuple[str, int], list[tuple[str, list[str]]]] = defaultdict(list)
        self._pending: dict[tuple[str, int], list[str]] = defaultdict(list)  # new ids of this batch

    def __len__(self) -> int:
        return len(self._index)

    def bucket_of(self, event_us: int) -> int:
        return event_us - event_us % self.bucket

    def load_chunk(self, chunk_key: str, topic: str, bucket: int, ids: list[str]) -> None:
        """Rebuild from a persisted chunk."""
        self._chunks[(topic, bucket)].append((chunk_key, ids))
        for i in ids:
            self._index[i] = bucket

    def seen(self, event_id: str) -> bool:
        return event_id in self._index

    def beyond(self, event_us: int, watermark_us: int) -> bool:
        """True when the event is too old for duplicates of it to be caught reliably."""
        return event_us + self.window < watermark_us

    def add(self, topic: str, event_id: str, event_us: int) -> None:
        """Remember an id (written out by ``take_pending``)."""
        b = self.bucket_of(event_us)
        self._index[event_id] = b
        self._pending[(topic, b)].append(event_id)

    def take_pending(self, suffix: str) -> list[tuple[str, int, str, list[str]]]:
        """New chunks to persist: (topic, bucket, chunk key, ids); ``suffix`` makes keys unique."""
        out = []
        for (topic, b), ids in self._pending.items():
            key = f"d|{topic}|{b}|{suffix}"
            self._chunks[(topic, b)].append((key, ids))
            out.append((topic, b, key, ids))
        self._pending.clear()
        return out

    def holds(self, topic: str) -> bool:
        """Whether any ids of ``topic`` (a tenant) are remembered."""
        return any(tb[0] == topic for tb in self._chunks) or any(tb[0] == topic for tb in self._pending)

    def expire(self, topic: str, watermark_us: int) -> list[str]:
        """Forget buckets of ``topic`` that ended more than a window ago; returns chunk keys to delete."""
        dead: list[str] = []
        limit = watermark_us - self.window - self.bucket
        index = self._index
        for tb in [tb for tb in self._chunks if tb[0] == topic and tb[1] < limit]:
            b = tb[1]
            for key, ids in self._chunks.pop(tb):
                dead.append(key)
                for i in ids:
                    if index.get(i) == b:
                        del index[i]
        return dead
