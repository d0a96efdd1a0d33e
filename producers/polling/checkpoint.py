"""A poller's durable position: one small JSON file per stream, replaced atomically.

A checkpoint is the watermark (the newest list time published: for Obot ``createdAt``, or
``occurredAt`` on v0.24+ mixed lists, ``recordedAt`` for the local-agent late sweep; for AxonFlow
the audit row's ``timestamp``) and the ids published within the overlap window before it. It is written only after Kafka acknowledged the records it
covers, so a crash can only make the poller publish a page again (with the same event ids), never
skip one.
"""

from __future__ import annotations

import contextlib
import os
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path

from gateledger import jsonutil
from gateledger.contracts.envelope import utc_iso


@dataclass
class Checkpoint:
    """Position in one stream."""

    watermark: datetime | None = None
    # id -> event time, for ids published with a time inside [watermark - overlap, watermark].
    recent: dict[str, datetime] = field(default_factory=dict)

    def advance(self, seen: dict[str, datetime], overlap: timedelta) -> None:
        """Take in ids that are now published; move the watermark; forget ids older than the window."""
        self.recent.update(seen)
        newest = max(seen.values(), default=None)
        if newest is not None and (self.watermark is None or newest > self.watermark):
            self.watermark = newest
        if self.watermark is not None:
            floor = self.watermark - overlap
            self.recent = {k: t for k, t in self.recent.items() if t >= floor}

    def remember(self, seen: dict[str, datetime], overlap: timedelta) -> None:
        """Take in published ids without moving the watermark (a pass that must finish first)."""
        self.recent.update(seen)
        if self.watermark is not None:
            floor = self.watermark - overlap
            self.recent = {k: t for k, t in self.recent.items() if t >= floor}

    def to_json(self) -> bytes:
        """Serialized form."""
        return jsonutil.dumps({
            "watermark": utc_iso(self.watermark) if self.watermark else None,
            "recent": {k: utc_iso(t) for k, t in sorted(self.recent.items())},
        })

    @classmethod
    def from_json(cls, raw: bytes) -> Checkpoint:
        """Parse a serialized checkpoint."""
        data = jsonutil.loads(raw)
        wm = jsonutil.parse_time(data.get("watermark"))
        recent = {k: jsonutil.parse_time(v) for k, v in (data.get("recent") or {}).items()}
        return cls(wm, {k: v for k, v in recent.items() if v is not None})


class CheckpointStore:
    """Checkpoints of one poller (one file per stream) under a directory."""

    def __init__(self, directory: Path, prefix: str) -> None:
        self.directory = directory
        self.prefix = prefix

    def path(self, stream: str) -> Path:
        """File of one stream."""
        return self.directory / f"{self.prefix}-{stream}.json"

    def load(self, stream: str) -> Checkpoint:
        """The stored checkpoint, or an empty one."""
        try:
            return Checkpoint.from_json(self.path(stream).read_bytes())
        except FileNotFoundError:
            return Checkpoint()

    def save(self, stream: str, checkpoint: Checkpoint) -> None:
        """Write atomically and durably: temp file, fsync, rename over the old one, fsync the directory."""
        self.directory.mkdir(parents=True, exist_ok=True)
        path = self.path(stream)
        tmp = path.with_name(f".{path.name}.tmp")
        with open(tmp, "wb") as f:
            f.write(checkpoint.to_json())
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        with contextlib.suppress(OSError):  # not every filesystem lets a directory be fsynced
            fd = os.open(self.directory, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)
