"""Per-partition event-time watermarks: the newest event time seen minus the allowed lateness.

When a partition has been idle (no events) for ``idle_advance`` of processing time, its watermark
follows the clock from the newest event on, so open work still closes when traffic stops. A
backfill of old events never triggers that (events keep arriving), so it is processed in event
time exactly like live traffic.
"""

from __future__ import annotations

from collections.abc import Callable


class Watermark:
    """One partition's event-time progress (microseconds). ``state`` is persisted by the owner."""

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
