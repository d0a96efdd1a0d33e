"""No orphans (gateledger/stack/orphans.py): a child dies with the process that started it, and a new
`up` stops what a killed one left, but never a recycled pid that now runs something else."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

from gateledger.stack import orphans

# A process whose command line says it is ours, as `python -m gateledger_cli.main serve ...` does.
OURS = [sys.executable, "-c", "import time, sys; time.sleep(600)", "gateledger-leftover"]
THEIRS = [sys.executable, "-c", "import time, sys; time.sleep(600)", "someone-else"]


def gone(pid: int, timeout_s: float = 20) -> bool:
    """True once the pid has no live process (reaped, or a zombie of ours)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if not Path(f"/proc/{pid}/cmdline").read_bytes():
                return True
        except OSError:
            return True
        time.sleep(0.05)
    return False


def test_child_gets_sigterm_when_its_parent_is_killed(tmp_path: Path) -> None:
    pid_file = tmp_path / "child.pid"
    parent_code = (
        "import subprocess, sys, time\n"
        "from gateledger.stack.orphans import die_with_parent\n"
        f"p = subprocess.Popen({OURS!r}, preexec_fn=die_with_parent(), start_new_session=True)\n"
        f"open({str(pid_file)!r}, 'w').write(str(p.pid))\n"
        "time.sleep(600)\n"
    )
    parent = subprocess.Popen([sys.executable, "-c", parent_code])
    try:
        deadline = time.monotonic() + 30
        while not pid_file.exists() or not pid_file.read_text():
            assert time.monotonic() < deadline and parent.poll() is None
            time.sleep(0.05)
        child = int(pid_file.read_text())
        assert not gone(child, timeout_s=0.2)
        parent.send_signal(signal.SIGKILL)
        parent.wait(10)
        assert gone(child), "the child outlived its SIGKILLed parent"
    finally:
        if parent.poll() is None:
            parent.kill()


def test_new_up_stops_the_leftovers_of_a_killed_one_and_nothing_else(tmp_path: Path) -> None:
    ours = subprocess.Popen(OURS, start_new_session=True)
    theirs = subprocess.Popen(THEIRS, start_new_session=True)  # a recycled pid: not ours any more
    try:
        dead = subprocess.Popen([sys.executable, "-c", "pass"])
        dead.wait()
        orphans.save(tmp_path, orphans.StackPids(supervisor=dead.pid,
                                                 children={"sink": ours.pid, "ingest": theirs.pid}))
        said: list[str] = []
        stopped = orphans.clear_stale(tmp_path, said.append)
        assert stopped == ["sink"]
        assert ours.wait(5) == -signal.SIGTERM
        assert theirs.poll() is None
        assert "did not stop cleanly" in said[0] and f"sink (pid {ours.pid})" in said[0]
        assert not (tmp_path / orphans.PIDS_FILE).exists()
        # Nothing left: nothing to say.
        assert orphans.clear_stale(tmp_path, said.append) == [] and len(said) == 1
    finally:
        for p in (ours, theirs):
            if p.poll() is None:
                os.kill(p.pid, signal.SIGKILL)
                p.wait()
