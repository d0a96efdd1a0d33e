"""The running embedded stack's state file: where each part listens, so other commands can find it."""

from __future__ import annotations

import contextlib
import os
from datetime import datetime
from pathlib import Path

from pydantic import BaseModel

from gateledger.clock import utcnow

STATE_FILE = "stack.json"


class StackState(BaseModel):
    """Written by ``gateledger up`` once every part is ready; removed on shutdown."""

    pid: int
    started_at: datetime
    data_dir: Path
    topic_prefix: str = ""
    kafka_bootstrap: str
    broker: str = "tansu"
    ingest_url: str
    sink_url: str  # the sink owns chDB: queries go through it while the stack runs
    processors_url: str
    clickhouse_dsn: str

    def save(self) -> None:
        """Write atomically, readable only by the owner."""
        path = self.data_dir / STATE_FILE
        tmp = path.with_suffix(".tmp")
        tmp.write_text(self.model_dump_json(indent=2))
        tmp.chmod(0o600)
        tmp.replace(path)


def pid_alive(pid: int) -> bool:
    """True when a process with this pid exists."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def load_running(data_dir: Path) -> StackState | None:
    """The state of the stack running on this data directory, or None."""
    path = data_dir / STATE_FILE
    try:
        state = StackState.model_validate_json(path.read_text())
    except (FileNotFoundError, ValueError):
        return None
    if not pid_alive(state.pid):
        return None
    return state


def remove(data_dir: Path) -> None:
    """Forget the state file (on shutdown)."""
    with contextlib.suppress(FileNotFoundError):
        (data_dir / STATE_FILE).unlink()


def started_now(**kwargs: object) -> StackState:
    """A state stamped with this process and time."""
    return StackState(pid=os.getpid(), started_at=utcnow(), **kwargs)  # type: ignore[arg-type]
