"""No orphans: children die with the supervisor, and a new ``up`` clears what a killed one left.

A supervisor killed with SIGKILL runs no cleanup. Two defences:

* every child asks the kernel for a parent-death signal (``prctl(PR_SET_PDEATHSIG, SIGTERM)``), so
  it gets SIGTERM the moment the supervisor's thread that spawned it exits, however it exits;
* the supervisor keeps ``stack.pids`` in the data dir (its own pid and each child's, rewritten on
  every restart). The next ``up`` takes the data-dir lock (free once the old supervisor is gone),
  finds the file, and stops any listed process that is still alive and still a gateledger or Tansu
  process (a recycled pid running something else is left alone), before it opens chDB or binds the
  ingest port. A child still draining its parent-death SIGTERM is waited for, then killed; a
  stopped one (SIGSTOP) is continued so it can act on it. A service of this data dir found holding
  its chDB (the ``status`` file's PID) or a fixed port is a leftover too, even without a pid file.
"""

from __future__ import annotations

import contextlib
import ctypes
import os
import signal
import time
from collections.abc import Callable
from pathlib import Path

from pydantic import BaseModel

PIDS_FILE = "stack.pids"
_PR_SET_PDEATHSIG = 1
# What a process of ours has on its command line (the children run `python -m gateledger_cli.main serve
# ...` or the Tansu binary).
_OURS = (b"gateledger", b"tansu")


class StackPids(BaseModel):
    """The supervisor and its children, by service name."""

    supervisor: int
    children: dict[str, int] = {}


def die_with_parent() -> Callable[[], None]:
    """A ``preexec_fn`` that makes the child receive SIGTERM when this process dies."""
    parent = os.getpid()
    libc = ctypes.CDLL(None, use_errno=True)

    def preexec() -> None:
        libc.prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() != parent:  # the parent died before prctl took effect
            os.kill(os.getpid(), signal.SIGTERM)

    return preexec


def save(data_dir: Path, pids: StackPids) -> None:
    """Write the pid file atomically."""
    path = data_dir / PIDS_FILE
    tmp = path.with_suffix(".tmp")
    tmp.write_text(pids.model_dump_json())
    tmp.replace(path)


def remove(data_dir: Path) -> None:
    """Forget the pid file (after a clean stop)."""
    with contextlib.suppress(FileNotFoundError):
        (data_dir / PIDS_FILE).unlink()


def _ours(pid: int) -> bool:
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return False
    if not cmdline:  # a zombie: exited, nothing to stop
        return False
    return any(marker in cmdline for marker in _OURS)


def _service_of(pid: int, data_dir: Path) -> bool:
    """A service of a stack on this data dir (not a `gateledger sql` of the user, not another stack)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes()
        environ = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    except OSError:
        return False
    wanted = f"GATELEDGER_DATA_DIR={data_dir}".encode()
    return (b"serve" in cmdline or b"tansu" in cmdline) and wanted in environ


def describe(pid: int) -> str:
    """A process's command line, for messages."""
    try:
        return Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace").strip()[:120]
    except OSError:
        return "unknown process"


def chdb_holder(data_dir: Path) -> int | None:
    """The pid ClickHouse wrote into the data path's ``status`` file while it holds the path, if any."""
    try:
        text = (data_dir / "clickhouse" / "status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        key, _, value = line.partition(":")
        if key.strip() == "PID" and value.strip().isdigit():
            return int(value.strip())
    return None


def port_holder(host: str, port: int) -> int | None:
    """The pid of a process listening on a loopback TCP port, when this user may see it."""
    inodes = set()
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            lines = Path(table).read_text().splitlines()[1:]
        except OSError:
            continue
        for line in lines:
            cols = line.split()
            if cols[3] == "0A" and int(cols[1].rsplit(":", 1)[1], 16) == port:  # 0A: LISTEN
                inodes.add(f"socket:[{cols[9]}]")
    if not inodes:
        return None
    for proc in Path("/proc").iterdir():
        if not proc.name.isdigit():
            continue
        with contextlib.suppress(OSError):
            for fd in (proc / "fd").iterdir():
                with contextlib.suppress(OSError):
                    if os.readlink(fd) in inodes:
                        return int(proc.name)
    return None


def clear_stale(data_dir: Path, say: Callable[[str], None], timeout_s: float = 15.0,
                ports: dict[str, tuple[str, int]] | None = None) -> list[str]:
    """Stop what a previous supervisor on this data dir left running; returns what was stopped.

    Besides the children ``stack.pids`` lists, a gateledger process still holding the data dir's
    chDB or one of ``ports`` (name -> fixed host and port) is a leftover too (a run whose pid file
    is gone). Call only while holding the data-dir lock: then no live supervisor owns any of them.
    """
    path = data_dir / PIDS_FILE
    try:
        stale = StackPids.model_validate_json(path.read_text())
    except (FileNotFoundError, ValueError):
        stale = StackPids(supervisor=0)
    holders = {"chDB holder": chdb_holder(data_dir)}
    for name, (host, port) in (ports or {}).items():
        holders[f"{name} port {port} holder"] = port_holder(host, port) if port else None
    for name, pid in holders.items():
        if pid and pid != os.getpid() and pid not in stale.children.values() and _service_of(pid, data_dir):
            stale.children[name] = pid
    if stale.supervisor == os.getpid():
        return []
    left = {name: pid for name, pid in stale.children.items() if _ours(pid)}
    if left:
        listed = ", ".join(f"{n} (pid {p})" for n, p in left.items())
        who = f" (supervisor pid {stale.supervisor})" if stale.supervisor else ""
        say(f"a previous stack on {data_dir}{who} did not stop cleanly; stopping its leftovers: {listed}")
        for pid in left.values():
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGTERM)
                os.kill(pid, signal.SIGCONT)  # a stopped process handles nothing until continued
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline and any(_ours(p) for p in left.values()):
            time.sleep(0.1)
        for name, pid in left.items():
            if _ours(pid):
                say(f"  {name} (pid {pid}) ignored SIGTERM for {timeout_s:.0f}s: killed")
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        while any(_ours(p) for p in left.values()):
            time.sleep(0.05)
    elif stale.supervisor:
        say(f"a previous stack on {data_dir} (supervisor pid {stale.supervisor}) did not stop cleanly; "
            "its processes are gone")
    remove(data_dir)
    return list(left)
