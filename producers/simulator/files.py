"""Writing a simulation as JSONL files for ``gateledger ingest`` and benchmarks.

Layout: ``<dir>/<tenant>/<format>.jsonl`` (one record per line, in delivery order; malformed
records included as the bytes that would have been sent) and ``<dir>/truth.json``. Ingest a
tenant's file with ``gateledger ingest --format <format> --tenant <tenant> <file>``.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path
from typing import IO

from producers.simulator.traffic import Delivery
from producers.simulator.truth import GroundTruth


def write_files(directory: Path, deliveries: Iterable[Delivery], truth: GroundTruth | None = None) -> dict[Path, int]:
    """Write the deliveries (and the truth); returns lines written per file."""
    directory.mkdir(parents=True, exist_ok=True)
    handles: dict[Path, IO[bytes]] = {}
    counts: dict[Path, int] = {}
    try:
        for d in deliveries:
            path = directory / d.tenant / f"{d.fmt}.jsonl"
            fh = handles.get(path)
            if fh is None:
                path.parent.mkdir(parents=True, exist_ok=True)
                fh = handles[path] = open(path, "wb")  # noqa: SIM115
            fh.write(d.body().replace(b"\n", b" ") + b"\n")
            counts[path] = counts.get(path, 0) + 1
    finally:
        for fh in handles.values():
            fh.close()
    if truth is not None:
        (directory / "truth.json").write_bytes(truth.to_json())
    return counts
