"""Event-time progress per tenant, from the newest event time of each of the tenant's sources.

A tenant's watermark is the minimum, over its **active** sources, of the source's newest event time
minus the allowed lateness. A source that delivered nothing for ``source_idle`` of processing time
stops holding its tenant back (an Obot export that arrives once a day must not stall the live tap);
as soon as it delivers again it counts again (its old events are late, and late evidence is folded
in, never dropped). When every source of a tenant has been quiet for ``idle_advance``, the
watermark follows the clock from the tenant's newest event on, so open work still closes when
traffic stops; a backfill never triggers that (events keep arriving). Watermarks never go back,
and each tenant has its own: one tenant's events (or clock skew) never move another tenant's time.

State: one entry per tenant, ``w|<tenant>`` = ``{"wm": watermark, "s": {source: newest event}}``
(microseconds), written in the owner's watermark group. The processing time of each source's last
arrival is not persisted: after a restart every known source counts as just heard from.

Bounded: ``prune`` forgets a source quiet for a whole retention window (processing time) once the
tenant's watermark has passed its newest event, and a tenant all of whose sources are that quiet
once the owner holds nothing of it; their gauges go with them. Neither changes any watermark: a
tenant's newest source is kept while the tenant is, and a forgotten tenant starts afresh.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

from stream_processors import telemetry
from stream_processors.common.partition_state import WATERMARK, PartitionState

PREFIX = "w|"


class Watermark:
    """One partition's event-time progress over all its events (the money stages). Persisted by the owner."""

    __slots__ = ("state", "lateness", "idle_advance", "_clock_us", "_last_arrival")

    def __init__(self, state: dict[str, int], lateness: int, idle_advance: int, clock_us: Callable[[], int]) -> None:
        self.state = state  # {"max": newest event time, "wm": watermark}
        self.lateness = lateness
        self.idle_advance = idle_advance
        self._clock_us = clock_us
        # Processing time of the last arrival; not persisted: a restarted worker waits a full idle
        # period before advancing by the clock again.
        self._last_arrival = clock_us()

    @property
    def value(self) -> int:
        return self.state.get("wm", 0)

    @property
    def newest(self) -> int:
        return self.state.get("max", 0)

    def observe(self, event_us: int) -> bool:
        """Account for one event; True when the watermark moved."""
        self._last_arrival = self._clock_us()
        st = self.state
        if event_us > st.get("max", 0):
            st["max"] = event_us
            wm = event_us - self.lateness
            if wm > st.get("wm", 0):
                st["wm"] = wm
                return True
        return False

    def idle_tick(self) -> bool:
        """Advance with the clock if idle long enough; True when the watermark moved."""
        if not self.idle_advance or not self.state.get("max"):
            return False
        idle = self._clock_us() - self._last_arrival
        if idle < self.idle_advance:
            return False
        wm = self.state["max"] - self.lateness + (idle - self.idle_advance)
        if wm > self.state.get("wm", 0):
            self.state["wm"] = wm
            return True
        return False



class TenantWatermarks:
    """The watermarks of every tenant seen in one partition of one stage."""

    def __init__(self, state: PartitionState, *, lateness: int, idle_advance: int, source_idle: int,
                 clock_us: Callable[[], int]) -> None:
        self._state = state
        self.lateness = lateness
        self.idle_advance = idle_advance
        self.source_idle = source_idle
        self._clock_us = clock_us
        self._tenants: dict[str, dict[str, Any]] = {}
        self._last: dict[tuple[str, str], int] = {}  # (tenant, source) -> processing time of last arrival

    @staticmethod
    def is_current(key: str, value: Any) -> bool:
        """True for a persisted tenant watermark (older layouts kept one watermark per topic or partition)."""
        return key.startswith(PREFIX) and isinstance(value, dict) and isinstance(value.get("s"), dict)

    def load(self, key: str, value: dict[str, Any]) -> None:
        """Adopt a persisted tenant entry (the state's own dict, mutated in place from now on)."""
        tenant = key[len(PREFIX):]
        self._tenants[tenant] = value
        now = self._clock_us()
        for src in value["s"]:
            self._last[(tenant, src)] = now

    def tenants(self) -> Iterator[str]:
        return iter(list(self._tenants))

    def value(self, tenant: str) -> int:
        """The tenant's watermark (0 before its first event)."""
        ent = self._tenants.get(tenant)
        return ent["wm"] if ent else 0

    def source_value(self, tenant: str, source: str) -> int:
        """Progress of one source: its newest event minus lateness while it is active, else the tenant's.

        For waits within one source (the two halves of an MCP exchange): a source first seen behind
        its tenant's other sources still gives its own records their full wait; once it goes quiet
        its waits end with the tenant's time.
        """
        ent = self._tenants.get(tenant)
        if ent is None:
            return 0
        newest = ent["s"].get(source)
        now = self._clock_us()
        quiet = now - self._last.get((tenant, source), now)
        if newest is None:
            return ent["wm"]
        if quiet >= self.source_idle or (self.idle_advance and quiet >= self.idle_advance):
            return max(ent["wm"], newest - self.lateness)
        return newest - self.lateness

    def newest(self, tenant: str) -> int:
        ent = self._tenants.get(tenant)
        return max(ent["s"].values(), default=0) if ent else 0

    def slowest(self) -> int:
        """The lowest tenant watermark of the partition (what the partition gauge shows)."""
        return min((e["wm"] for e in self._tenants.values()), default=0)

    def observe(self, tenant: str, source: str, event_us: int) -> bool:
        """Account for one event of ``source``; True when the tenant's watermark moved."""
        ent = self._tenants.get(tenant)
        key = PREFIX + tenant
        if ent is None:
            ent = self._tenants[tenant] = {"wm": 0, "s": {}}
            self._state.put(key, ent, WATERMARK)
        self._last[(tenant, source)] = self._clock_us()
        if event_us > ent["s"].get(source, -1):
            ent["s"][source] = event_us
            self._state.touch(key, WATERMARK)
        return self._advance(tenant, ent)

    def tick(self) -> list[str]:
        """Re-evaluate every tenant against the clock (sources going idle); the tenants that moved."""
        return [t for t, ent in list(self._tenants.items()) if self._advance(t, ent)]

    def _advance(self, tenant: str, ent: dict[str, Any]) -> bool:
        sources = ent["s"]
        if not sources:
            return False
        now = self._clock_us()
        newest = max(sources.values())
        quiet = now - max(self._last.get((tenant, s), now) for s in sources)
        if self.idle_advance and quiet >= self.idle_advance:
            wm = newest - self.lateness + (quiet - self.idle_advance)
        else:
            active = [t for s, t in sources.items() if now - self._last.get((tenant, s), now) < self.source_idle]
            wm = (min(active) if active else newest) - self.lateness
        if wm > ent["wm"]:
            ent["wm"] = wm
            self._state.touch(PREFIX + tenant, WATERMARK)
            return True
        return False

    def prune(self, stage: str, horizon: int, holds: Callable[[str], bool]) -> list[tuple[str, str | None]]:
        """Forget sources and tenants quiet for ``horizon`` of processing time (at least ``source_idle``).

        A source goes once the tenant's watermark has passed its newest event, unless it holds the
        tenant's newest event (the idle advance counts from it); a tenant goes, with every source,
        once ``holds(tenant)`` says the owner keeps nothing of it (no timers, no dedup chunks).
        Returns what was forgotten: ``(tenant, source)``, or ``(tenant, None)`` for a whole tenant.
        """
        now = self._clock_us()
        horizon = max(horizon, self.source_idle)
        gone: list[tuple[str, str | None]] = []
        for tenant, ent in list(self._tenants.items()):
            sources = ent["s"]
            quiet = [s for s in sources if now - self._last.get((tenant, s), now) >= horizon]
            if len(quiet) == len(sources) and not holds(tenant):
                for src in list(sources):
                    self._forget_source(stage, tenant, ent, src)
                del self._tenants[tenant]
                self._state.delete(PREFIX + tenant, WATERMARK)
                with contextlib.suppress(KeyError):
                    telemetry.TENANT_WATERMARK.remove(stage, tenant)
                gone.append((tenant, None))
                continue
            newest = max(sources.values(), default=0)
            for src in quiet:
                if sources[src] < newest and sources[src] - self.lateness <= ent["wm"]:
                    self._forget_source(stage, tenant, ent, src)
                    gone.append((tenant, src))
        return gone

    def _forget_source(self, stage: str, tenant: str, ent: dict[str, Any], source: str) -> None:
        del ent["s"][source]
        self._state.touch(PREFIX + tenant, WATERMARK)
        self._last.pop((tenant, source), None)
        for gauge in (telemetry.SOURCE_LAG, telemetry.SOURCE_ACTIVE):
            with contextlib.suppress(KeyError):
                gauge.remove(stage, tenant, source)

    def report(self, stage: str) -> None:
        """Per-source lag gauges: how far each source's newest event trails its tenant's newest."""
        now = self._clock_us()
        for tenant, ent in self._tenants.items():
            newest = max(ent["s"].values(), default=0)
            for src, t in ent["s"].items():
                telemetry.SOURCE_LAG.labels(stage=stage, tenant=tenant, source=src).set((newest - t) / 1e6)
                active = now - self._last.get((tenant, src), now) < self.source_idle
                telemetry.SOURCE_ACTIVE.labels(stage=stage, tenant=tenant, source=src).set(1 if active else 0)
            telemetry.TENANT_WATERMARK.labels(stage=stage, tenant=tenant).set(ent["wm"] / 1e6)
