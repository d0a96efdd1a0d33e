"""The production sink with fault injection, for tests only: it SIGKILLs itself after flush steps.

Run as ``python -m tests.sinks.crashing_sink``. ``CRASH_POINTS`` (comma-separated names from
``sinks.clickhouse.service.CRASH_POINTS``) and ``CRASH_PROBABILITY`` say where and how often; every
other setting is the sink's own (``GATELEDGER_*``), so the process is ``gateledger serve sink`` plus
the kills, and the production settings carry no fault injection.
"""

from __future__ import annotations

import logging
import os
import random
import signal

from gateledger_cli.main import cli
from sinks.clickhouse.service import CRASH_POINTS, SinkService

log = logging.getLogger(__name__)


def install(points: set[str], probability: float) -> None:
    """Make every sink in this process SIGKILL itself after each of ``points`` with ``probability``."""
    unknown = points - set(CRASH_POINTS)
    if unknown:
        raise ValueError(f"unknown crash points {sorted(unknown)}; known: {CRASH_POINTS}")

    def crash(self: SinkService, point: str) -> None:
        if point in points and random.random() < probability:
            log.warning("fault injection: SIGKILL at %s", point)
            os.kill(os.getpid(), signal.SIGKILL)

    SinkService._crash = crash  # type: ignore[method-assign]


def main() -> None:
    """``gateledger serve sink`` with the crash points of the environment installed."""
    points = {p.strip() for p in os.environ.get("CRASH_POINTS", "").split(",") if p.strip()}
    install(points, float(os.environ.get("CRASH_PROBABILITY", "0")))
    cli(["serve", "sink"], prog_name="gateledger")


if __name__ == "__main__":
    main()
