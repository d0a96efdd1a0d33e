"""Small network helpers: loopback ports and readiness waits."""

from __future__ import annotations

import random
import socket
import time
from pathlib import Path


_EPHEMERAL_RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
_LOWEST = 10_000  # below: well-known services' ports
_handed_out: set[int] = set()


def _ephemeral_range() -> tuple[int, int]:
    """The ports the OS gives outgoing connections (Linux's default when unknown)."""
    try:
        lo, hi = (int(x) for x in _EPHEMERAL_RANGE.read_text().split())
    except (OSError, ValueError):
        return 32768, 60999
    return lo, hi


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port free right now on the given loopback host, outside the OS's ephemeral range.

    A service restarted on the same address (after a broker recycle or a crash) binds its port again;
    a port from the ephemeral range may meanwhile be the local end of any outgoing connection on the
    machine ("address already in use"). Ports above and below that range are never taken that way.
    """
    lo, hi = _ephemeral_range()
    ports = [p for p in (*range(_LOWEST, lo), *range(hi + 1, 65536)) if p not in _handed_out]
    rnd = random.SystemRandom()
    for port in rnd.sample(ports, min(100, len(ports))):
        with socket.socket() as s:
            try:
                s.bind((host, port))
            except OSError:
                continue
        _handed_out.add(port)  # two calls in a row never hand out the same port
        return port
    with socket.socket() as s:  # every candidate taken: let the OS choose
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_port(host: str, port: int, timeout_s: float = 20.0) -> None:
    """Block until something accepts TCP connections on host:port."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            with socket.create_connection((host, port), timeout=0.5):
                return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing listening on {host}:{port} after {timeout_s}s") from None
            time.sleep(0.05)
