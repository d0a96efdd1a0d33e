"""The import direction is a checked contract: gateledger.cli -> stages -> the rest of gateledger.

import-linter reads `.importlinter` at the repository root. A second run against a small tree whose
core imports a stage proves the contracts are not vacuous (they do break on a violation)."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
LINT = Path(sys.executable).with_name("lint-imports")
PACKAGES = ("gateledger", "producers", "stream_processors", "sinks", "dashboards", "benchmarks")


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": str(pythonpath)}
    return subprocess.run([str(LINT), "--config", str(REPO / ".importlinter"), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_repository_keeps_every_import_contract() -> None:
    done = _lint(REPO, REPO)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_a_core_module_importing_a_stage_breaks_the_contract(tmp_path: Path) -> None:
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "gateledger" / "cli").mkdir()
    (tmp_path / "gateledger" / "cli" / "__init__.py").write_text("import producers\n")  # allowed
    (tmp_path / "producers" / "formats.py").write_text("")
    (tmp_path / "gateledger" / "ids.py").write_text("from producers import formats\n")  # not allowed
    (tmp_path / "sinks" / "writer.py").write_text("import stream_processors\n")  # stage -> stage
    done = _lint(tmp_path, tmp_path)
    assert done.returncode != 0
    assert "gateledger.ids -> producers.formats" in done.stdout
    assert "sinks.writer -> stream_processors" in done.stdout
    assert "1 kept, 2 broken" in done.stdout
