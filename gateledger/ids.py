"""Deterministic ids: the same upstream record always gets the same id, so retries and replays are idempotent."""

from __future__ import annotations

import hashlib
from typing import Any

from gateledger.jsonutil import canonical_bytes

_ID_BYTES = 16  # 128 bits: collision-free for any realistic event volume


def stable_id(*parts: Any) -> str:
    """A 32-hex-digit id from the given parts (strings, numbers, None, or JSON-able values)."""
    h = hashlib.blake2b(digest_size=_ID_BYTES)
    for part in parts:
        if isinstance(part, bytes):
            chunk = part
        elif isinstance(part, str):
            chunk = part.encode()
        elif part is None:
            chunk = b"\x00null"
        elif isinstance(part, bool | int | float):
            chunk = repr(part).encode()
        else:
            chunk = canonical_bytes(part)
        # Length-prefix each part so ("ab", "c") and ("a", "bc") differ.
        h.update(len(chunk).to_bytes(8, "big"))
        h.update(chunk)
    return h.hexdigest()


def event_id(source: str, event_type: str, upstream_id: Any = None, record: Any = None) -> str:
    """Id of an envelope: from the upstream id when it has one, else from the canonical record."""
    if upstream_id not in (None, "", 0):
        return stable_id("upstream", source, event_type, str(upstream_id))
    return stable_id("record", source, event_type, record)
