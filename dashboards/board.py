"""A dashboard under construction: panels flow left to right in rows, ids and grid positions assigned here.

The SDK's own auto-layout does not wrap a panel that would overflow the 24-column grid; this one
does, and numbers panels in order, so the generated JSON is stable and never overlaps.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

from grafana_foundation_sdk.builders import dashboard as dash_b
from grafana_foundation_sdk.cog import builder as cogbuilder
from grafana_foundation_sdk.models import dashboard

GRID_WIDTH = 24


@dataclass(frozen=True)
class Size:
    """A panel's share of the grid: ``w`` of the 24 columns, ``h`` rows high."""

    w: int
    h: int = 8


# How panels share a row, the same on every dashboard: headline numbers six to a line, graphs two to a
# line, tables two to a line or across it (a little taller, for their rows), long lists across it.
STAT = Size(4, 4)
HALF = Size(12)
FULL = Size(GRID_WIDTH)
HALF_TABLE = Size(12, 9)
FULL_TABLE = Size(GRID_WIDTH, 9)
LIST = Size(GRID_WIDTH, 10)


class Board:
    """Collects rows and panels of one dashboard and positions them."""

    def __init__(
        self,
        uid: str,
        title: str,
        *,
        description: str,
        tags: Sequence[str],
        time_from: str,
        refresh: str,
        variables: Sequence[cogbuilder.Builder[dashboard.VariableModel]],
        links: Sequence[dash_b.DashboardLink] = (),
    ) -> None:
        self._builder = (
            dash_b.Dashboard(title)
            .uid(uid)
            .description(description)
            .tags(list(tags))
            .timezone("utc")
            .time(time_from, "now")
            .refresh(refresh)
            .editable()
            .tooltip(dashboard.DashboardCursorSync.CROSSHAIR)
            .timepicker(dash_b.TimePicker().refresh_intervals(["10s", "30s", "1m", "5m", "15m", "1h"]))
            .variables(list(variables))
            .links(list(links))
        )
        self._next_id = 1
        self._x = 0
        self._y = 0
        self._line_height = 0

    def _newline(self) -> None:
        self._x = 0
        self._y += self._line_height
        self._line_height = 0

    def row(self, title: str) -> Board:
        """Start a titled row on a new line."""
        if self._x:
            self._newline()
        row = (
            dash_b.Row(title)
            .id(self._take_id())
            .grid_pos(dashboard.GridPos(h=1, w=GRID_WIDTH, x=0, y=self._y))
        )
        self._builder.with_row(row)
        self._y += 1
        return self

    def add(self, panel: cogbuilder.Builder[dashboard.Panel], size: Size = HALF) -> Board:
        """Place a panel of ``size`` after the previous one."""
        w, h = size.w, size.h
        if not 0 < w <= GRID_WIDTH:
            raise ValueError(f"panel width {w} outside 1..{GRID_WIDTH}")
        if self._x + w > GRID_WIDTH:
            self._newline()
        panel.id(self._take_id()).grid_pos(dashboard.GridPos(h=h, w=w, x=self._x, y=self._y))  # type: ignore[attr-defined]
        self._builder.with_panel(panel)
        self._x += w
        self._line_height = max(self._line_height, h)
        if self._x == GRID_WIDTH:
            self._newline()
        return self

    def _take_id(self) -> int:
        i = self._next_id
        self._next_id += 1
        return i

    def build(self) -> dashboard.Dashboard:
        """The finished dashboard model."""
        return self._builder.build()
