"""State size per stage table and per tenant, as Prometheus gauges, measured in bounded steps.

Bytes are the entries' keys and values as persisted to the changelog (JSON): what a restart reads
back, and proportional to the heap the state holds (docs/benchmarks.md measures the ratio). A full
pass over a large table would stall the event loop, so each call measures at most ``budget``
entries of a snapshot of the keys and the gauges change once a pass is complete.

Tenant of an entry: the field after the type letter for the keys that carry one (``w|<tenant>``,
``d|<tenant>|...``, ``c|<tenant>|...``, ``i|<tenant>|...``); other entries (cost and budget rows,
Obot exchanges) are counted under the tenant label ``-``.
"""

from __future__ import annotations

from typing import Any

import orjson

from gateledger.memory import memory_limit_bytes
from stream_processors import telemetry

__all__ = ["NO_TENANT", "StateSizer", "memory_limit_bytes", "tenant_of"]

_TENANT_KEYS = frozenset("wdci")
NO_TENANT = "-"


def tenant_of(key: str) -> str:
    """The tenant of a store key ``<partition>|<type>|<tenant>|...`` (``-`` when it has none)."""
    parts = key.split("|", 3)
    if len(parts) >= 3 and parts[1] in _TENANT_KEYS and parts[2]:
        return parts[2]
    return NO_TENANT


class StateSizer:
    """Measures one stage's table a slice at a time and publishes whole passes."""

    def __init__(self, table: str, budget: int = 20_000) -> None:
        self.table = table
        self.budget = budget
        self._keys: list[Any] = []
        self._at = 0
        self._entries: dict[str, int] = {}
        self._bytes: dict[str, int] = {}
        self._published: set[str] = set()
        self.passes = 0

    def step(self, store: dict[Any, Any]) -> bool:
        """Measure the next slice; True when that completed a pass (and the gauges were set)."""
        if self._at >= len(self._keys):
            self._keys = list(store)
            self._at = 0
            self._entries, self._bytes = {}, {}
        end = min(self._at + self.budget, len(self._keys))
        entries, size = self._entries, self._bytes
        for key in self._keys[self._at:end]:
            value = store.get(key)
            if value is None or not isinstance(key, str):
                continue  # deleted since the snapshot
            tenant = tenant_of(key)
            entries[tenant] = entries.get(tenant, 0) + 1
            size[tenant] = size.get(tenant, 0) + len(key) + len(orjson.dumps(value))
        self._at = end
        if self._at < len(self._keys):
            return False
        self._publish()
        self._keys = []
        return True

    def _publish(self) -> None:
        self.passes += 1
        telemetry.STATE_BYTES.labels(table=self.table).set(sum(self._bytes.values()))
        for tenant, n in self._entries.items():
            telemetry.TENANT_STATE_ENTRIES.labels(table=self.table, tenant=tenant).set(n)
            telemetry.TENANT_STATE_BYTES.labels(table=self.table, tenant=tenant).set(self._bytes[tenant])
        for gone in self._published - set(self._entries):
            telemetry.TENANT_STATE_ENTRIES.remove(self.table, gone)
            telemetry.TENANT_STATE_BYTES.remove(self.table, gone)
        self._published = set(self._entries)

    def totals(self) -> tuple[dict[str, int], dict[str, int]]:
        """Entries and bytes per tenant of the last complete pass (or the one under way)."""
        return dict(self._entries), dict(self._bytes)
