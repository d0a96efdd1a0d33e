"""gateledger/signals.py: a service stops cleanly on SIGTERM or SIGINT, and other signals reach their handlers."""

from __future__ import annotations

import signal
import subprocess
import sys

import pytest

SERVICE = """
import signal
from gateledger.signals import run_until_stopped

async def run(stop):
    print("ready", flush=True)
    await stop.wait()
    print("stopped", flush=True)

run_until_stopped(run, {signal.SIGUSR1: lambda: print("usr1", flush=True)})
"""


@pytest.mark.parametrize("stop_with", [signal.SIGTERM, signal.SIGINT])
def test_a_stop_signal_ends_the_service_cleanly_and_others_reach_their_handlers(stop_with: signal.Signals) -> None:
    proc = subprocess.Popen([sys.executable, "-c", SERVICE], stdout=subprocess.PIPE, text=True)
    try:
        assert proc.stdout is not None and proc.stdout.readline() == "ready\n"
        proc.send_signal(signal.SIGUSR1)  # its default action would kill the process
        assert proc.stdout.readline() == "usr1\n"
        proc.send_signal(stop_with)
        assert proc.stdout.readline() == "stopped\n"
        assert proc.wait(20) == 0
    finally:
        proc.kill()
        proc.wait()
