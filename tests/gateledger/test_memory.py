"""The memory limit the services' memory alerts compare with (gateledger/memory.py)."""

from __future__ import annotations

from pathlib import Path

from gateledger.memory import memory_limit_bytes


def _cgroup_limit() -> int | None:
    for path in ("/sys/fs/cgroup/memory.max", "/sys/fs/cgroup/memory/memory.limit_in_bytes"):
        p = Path(path)
        if p.exists():
            text = p.read_text().strip()
            if text.isdigit() and int(text) < 1 << 60:
                return int(text)
    return None


def test_the_limit_is_the_cgroups_else_the_machines_ram() -> None:
    ram = next(int(line.split()[1]) * 1024 for line in Path("/proc/meminfo").read_text().splitlines()
               if line.startswith("MemTotal:"))
    assert memory_limit_bytes() == (_cgroup_limit() or ram)
    assert memory_limit_bytes() > 64 * 2**20
