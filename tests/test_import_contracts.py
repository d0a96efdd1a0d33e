"""The import direction is a checked contract: gateledger_cli -> stages -> the rest of gateledger.

import-linter reads `.importlinter` at the repository root. A second run against a small tree whose
core imports a stage proves the contracts are not vacuous (they do break on a violation)."""

from __future__ import annotations

import os
import subprocess
import sys
import sysconfig
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
# `gateledger` is a namespace package: an editable install's finder (a .pth in site-packages) would merge
# another checkout's gateledger/ into this one's, and lint modules this tree does not have. Running
# without site (-S) and with site-packages on the path reads exactly the tree under test.
LINT = [sys.executable, "-S", "-c", "import sys; from importlinter.cli import lint_imports_command as c; sys.exit(c())"]
PACKAGES = ("gateledger", "gateledger_cli", "producers", "stream_processors", "sinks", "dashboards", "benchmarks")


def _lint(cwd: Path, pythonpath: Path) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(pythonpath), sysconfig.get_paths()["purelib"]])}
    return subprocess.run([*LINT, "--config", str(REPO / ".importlinter"), "--no-cache"], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=300)


def test_the_repository_keeps_every_import_contract() -> None:
    done = _lint(REPO, REPO)
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-2000:]
    assert "3 kept, 0 broken" in done.stdout


def test_a_core_module_importing_a_stage_breaks_the_contract(tmp_path: Path) -> None:
    for name in PACKAGES:
        (tmp_path / name).mkdir()
        (tmp_path / name / "__init__.py").write_text("")
    (tmp_path / "gateledger_cli" / "__init__.py").write_text("import producers\n")  # allowed
    (tmp_path / "producers" / "formats.py").write_text("")
    (tmp_path / "gateledger" / "ids.py").write_text("from producers import formats\n")  # not allowed
    (tmp_path / "gateledger" / "stack.py").write_text("import gateledger_cli\n")  # core -> command line
    (tmp_path / "sinks" / "writer.py").write_text("import stream_processors\n")  # stage -> stage
    done = _lint(tmp_path, tmp_path)
    assert done.returncode != 0
    assert "gateledger.ids -> producers.formats" in done.stdout
    assert "gateledger.stack -> gateledger_cli" in done.stdout
    assert "sinks.writer -> stream_processors" in done.stdout
    assert "1 kept, 2 broken" in done.stdout
