"""Recognising re-sent webhook deliveries: the same signed bytes to the same filter within a window.

Obot signs the body only (no timestamp, no delivery id: mcp-images
http-webhook-mcp-converter/server.js), so a captured delivery stays valid forever and can be
re-sent by anyone who saw it. Within ``window_s`` a repeat is answered with the first delivery's
verdict and not published again. Beyond this process's memory (another worker, a restart), the
event id still names the delivery by its bytes and its window (``delivery_id``), so a repeat
published again in the same window collapses downstream with the first.

The price: two honest, byte-identical messages to one filter within the window (the same JSON-RPC
id, method and arguments) are recorded once. Obot's JSON-RPC ids count up per session, so that
takes two sessions making the same call with the same id in the same minutes.
"""

from __future__ import annotations

import hashlib
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class Seen:
    """What the first delivery got: its verdict (status and JSON answer) and its event id."""

    status: int
    payload: dict[str, Any]
    delivery_id: str


class ReplayWindow:
    """Deliveries seen in the last ``window_s`` seconds, by filter and body digest (bounded memory)."""

    def __init__(self, window_s: float, max_entries: int = 100_000,
                 clock: Callable[[], float] = time.time) -> None:
        self.window_s = window_s
        self.max_entries = max_entries
        self.clock = clock
        self._seen: OrderedDict[bytes, tuple[float, Seen]] = OrderedDict()

    @staticmethod
    def key(target: str, body: bytes) -> bytes:
        """The identity of a delivery: where it was sent (the filter URL's path, which carries the filter
        and the server / user scope) and its exact bytes. The same message sent for another scope is
        another delivery, with its own verdict."""
        return hashlib.sha256(target.encode() + b"\0" + body).digest()

    def delivery_id(self, key: bytes) -> str:
        """A delivery id stable for these bytes within one window (the event id derives from it)."""
        bucket = int(self.clock() // self.window_s) if self.window_s > 0 else 0
        return f"sha256:{key.hex()[:32]}:{bucket}"

    def get(self, key: bytes) -> Seen | None:
        """The first delivery's outcome when these bytes were seen within the window."""
        self._expire()
        hit = self._seen.get(key)
        return hit[1] if hit else None

    def remember(self, key: bytes, seen: Seen) -> None:
        """Record a delivery's outcome (after it was published)."""
        if self.window_s <= 0:
            return
        self._seen[key] = (self.clock(), seen)
        self._seen.move_to_end(key)
        while len(self._seen) > self.max_entries:
            self._seen.popitem(last=False)

    def _expire(self) -> None:
        cutoff = self.clock() - self.window_s
        while self._seen:
            first = next(iter(self._seen.values()))
            if first[0] >= cutoff:
                return
            self._seen.popitem(last=False)
