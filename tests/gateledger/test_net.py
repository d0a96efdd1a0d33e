"""Ports the stack binds again after a restart are never ones the OS hands to outgoing connections."""

from __future__ import annotations

import socket

from gateledger.net import _ephemeral_range, free_port


def test_free_ports_are_outside_the_ephemeral_range_distinct_and_bindable() -> None:
    lo, hi = _ephemeral_range()
    ports = [free_port() for _ in range(50)]
    assert len(set(ports)) == len(ports)
    assert not any(lo <= p <= hi for p in ports)
    for port in ports[:5]:
        with socket.socket() as s:
            s.bind(("127.0.0.1", port))
