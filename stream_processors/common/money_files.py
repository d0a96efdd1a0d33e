"""The money files a running worker reads (price catalog, teams, budgets), re-read when they change.

``stat`` per event would cost more than pricing it, so the files are checked at most once per
``interval_s`` of processing time. A broken edit is logged and the last good version stays in use
(``CatalogLoader`` / ``BudgetsLoader`` semantics).
"""

from __future__ import annotations

import logging
import os
import time
from pathlib import Path

from gateledger.money.budgets import BudgetsLoader, BudgetSet
from gateledger.money.catalog import CatalogLoader, PriceCatalog
from gateledger.money.teams import TeamDirectory, TeamsFileError

log = logging.getLogger(__name__)


class MoneyFiles:
    """Current catalog, teams and budgets, with throttled reloads."""

    def __init__(self, prices_file: Path | None, teams_file: Path | None, budgets_file: Path | None,
                 interval_s: float = 1.0) -> None:
        self.interval_s = interval_s
        self._catalog = CatalogLoader(prices_file)
        self._teams_path = teams_file
        self._teams_stamp: tuple[int, int] | None = None
        self._teams = TeamDirectory()
        self._budgets = BudgetsLoader(budgets_file) if budgets_file is not None else None
        self._checked = 0.0
        self._reload_teams()

    def _reload_teams(self) -> None:
        if self._teams_path is None:
            return
        try:
            st = os.stat(self._teams_path)
            stamp: tuple[int, int] | None = (st.st_mtime_ns, st.st_size)
        except OSError:
            stamp = None
        if stamp == self._teams_stamp:
            return
        self._teams_stamp = stamp
        try:
            self._teams = TeamDirectory.load(self._teams_path if stamp is not None else None)
        except TeamsFileError as exc:
            log.error("teams file not reloaded, keeping the previous one: %s", exc)

    def refresh(self, force: bool = False) -> None:
        """Re-read changed files (at most once per interval unless forced)."""
        now = time.monotonic()
        if not force and now - self._checked < self.interval_s:
            return
        self._checked = now
        self._catalog.current()
        self._reload_teams()
        if self._budgets is not None:
            self._budgets.current()

    @property
    def catalog(self) -> PriceCatalog:
        return self._catalog._catalog  # noqa: SLF001 - refreshed by refresh()

    @property
    def teams(self) -> TeamDirectory:
        return self._teams

    @property
    def budgets(self) -> BudgetSet:
        return self._budgets._budgets if self._budgets is not None else BudgetSet()  # noqa: SLF001


def from_settings(core: object, interval_s: float = 1.0) -> MoneyFiles:
    """The money files named by ``GATELEDGER_PRICES_FILE`` / ``_TEAMS_FILE`` / ``_BUDGETS_FILE``."""
    from gateledger.money.settings import MoneySettings

    money = MoneySettings()
    return MoneyFiles(money.prices_file, money.teams_file, money.budgets_path(core), interval_s)  # type: ignore[arg-type]
