"""The dedup window: event ids seen in one partition, remembered for a fixed span of event time.

An id is remembered as a 90-bit digest (BLAKE2b), a Python int of 36 bytes, in one set per
(tenant, event-time bucket): ~70 B of heap per id instead of ~165 B for the id string in an index.
Collisions: a collision makes a new event look like a duplicate (it would be dropped), so the
digest is wide enough for that never to be expected: with n ids of one tenant remembered at once in
one partition, the chance of any pair colliding is at most n² / 2^91 — for n = 10^8 (1,150 events/s
for a whole day of window, one partition) 4·10^-12 per window, about one in 700 million years of
daily windows. (64 bits would give 3·10^-4 per such day.)

Ids are persisted in *chunks*: one state entry per (tenant, bucket, batch) holding the digests of
the ids first seen in that batch, base64 of 12 bytes each (``encode_chunk``), so a batch of N new
events costs one changelog write per bucket, not N. A chunk is dropped once the tenant's watermark
passes its bucket's end + the window. The sets are rebuilt from the chunks after a restart or
rebalance; a chunk of the older layout (a JSON list of the ids themselves) is read too.

Bound: memory ~ (event rate x (window + bucket)) digests. An event older than watermark - window is
still processed (nothing is dropped) but counted as ``beyond_window``: a duplicate of it may pass.
"""

from __future__ import annotations

import base64
from collections import defaultdict
from hashlib import blake2b
from typing import Any

_DIGEST_BYTES = 12
_SHIFT = _DIGEST_BYTES * 8 - 90  # keep 90 bits: an int of three 30-bit digits (36 bytes)


def digest(event_id: str) -> int:
    """The 90-bit digest an id is remembered by."""
    d = blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=_DIGEST_BYTES).digest()
    return int.from_bytes(d, "big") >> _SHIFT


def encode_chunk(digests: list[int]) -> str:
    """A chunk's persisted value: base64 of the digests, 12 bytes each."""
    return base64.b64encode(b"".join(d.to_bytes(_DIGEST_BYTES, "big") for d in digests)).decode("ascii")


def decode_chunk(value: Any) -> list[int]:
    """The digests of a persisted chunk (this layout's string, or the older layout's list of ids)."""
    if isinstance(value, list):
        return [digest(i) for i in value if isinstance(i, str)]
    raw = base64.b64decode(value)
    return [int.from_bytes(raw[i:i + _DIGEST_BYTES], "big") for i in range(0, len(raw), _DIGEST_BYTES)]


class DedupWindow:
    """Seen event ids of one partition."""

    def __init__(self, window_us: int, bucket_us: int) -> None:
        self.window = window_us
        self.bucket = bucket_us
        # tenant -> bucket start -> digests first seen in that bucket (persisted or pending)
        self._sets: dict[str, dict[int, set[int]]] = {}
        # (tenant, bucket start) -> chunk keys persisted for it
        self._chunks: dict[tuple[str, int], list[str]] = defaultdict(list)
        self._pending: dict[tuple[str, int], list[int]] = defaultdict(list)  # new digests of this batch
        self._n = 0

    def __len__(self) -> int:
        return self._n

    def bucket_of(self, event_us: int) -> int:
        return event_us - event_us % self.bucket

    def _set(self, tenant: str, bucket: int) -> set[int]:
        buckets = self._sets.get(tenant)
        if buckets is None:
            buckets = self._sets[tenant] = {}
        s = buckets.get(bucket)
        if s is None:
            s = buckets[bucket] = set()
        return s

    def load_chunk(self, chunk_key: str, tenant: str, bucket: int, value: Any) -> None:
        """Rebuild from a persisted chunk."""
        self._chunks[(tenant, bucket)].append(chunk_key)
        s = self._set(tenant, bucket)
        before = len(s)
        s.update(decode_chunk(value))
        self._n += len(s) - before

    def seen(self, tenant: str, event_id: str) -> bool:
        """Whether the tenant's id is remembered."""
        buckets = self._sets.get(tenant)
        if not buckets:
            return False
        d = digest(event_id)
        return any(d in s for s in buckets.values())

    def beyond(self, event_us: int, watermark_us: int) -> bool:
        """True when the event is too old for duplicates of it to be caught reliably."""
        return event_us + self.window < watermark_us

    def add(self, tenant: str, event_id: str, event_us: int) -> None:
        """Remember an id (written out by ``take_pending``)."""
        b = self.bucket_of(event_us)
        d = digest(event_id)
        s = self._set(tenant, b)
        if d not in s:
            s.add(d)
            self._n += 1
        self._pending[(tenant, b)].append(d)

    def take_pending(self, suffix: str) -> list[tuple[str, int, str, str]]:
        """New chunks to persist: (tenant, bucket, chunk key, value); ``suffix`` makes keys unique."""
        out = []
        for (tenant, b), digests in self._pending.items():
            key = f"d|{tenant}|{b}|{suffix}"
            self._chunks[(tenant, b)].append(key)
            out.append((tenant, b, key, encode_chunk(digests)))
        self._pending.clear()
        return out

    def holds(self, tenant: str) -> bool:
        """Whether any ids of the tenant are remembered."""
        return bool(self._sets.get(tenant))

    def expire(self, tenant: str, watermark_us: int) -> list[str]:
        """Forget buckets of the tenant that ended more than a window ago; returns chunk keys to delete."""
        buckets = self._sets.get(tenant)
        if not buckets:
            return []
        dead: list[str] = []
        limit = watermark_us - self.window - self.bucket
        for b in [b for b in buckets if b < limit]:
            self._n -= len(buckets.pop(b))
            self._pending.pop((tenant, b), None)
            dead.extend(dict.fromkeys(self._chunks.pop((tenant, b), ())))
        if not buckets:
            del self._sets[tenant]
        return dead
