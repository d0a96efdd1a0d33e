"""Budget definitions: the YAML file (``GATELEDGER_BUDGETS_FILE``) the CLI edits and every stage reads.

::

    budgets:
      - name: acme-monthly            # unique; the budget id defaults to it (set `id` to keep history across renames)
        scope: {tenant: acme, model: "claude-*"}   # any of tenant, team, user, client, mcp_server, model
        period: month                 # day | week | month | rolling
        timezone: Europe/Berlin       # calendar periods (IANA name; default UTC)
        # hours: 6                    # rolling windows only
        limit_usd: "1000"
        thresholds: [50, 80, 100]     # percent of the limit (default)
        action: alert                 # or block
        projection: true              # projected-exhaustion alert (calendar periods)

Scope values are strings or lists of strings; ``*``, ``?`` and ``[...]`` make a value a glob
(model names compare case-insensitively, with dots and dashes equivalent). A dimension absent from
the scope is unconstrained. A cost row counts towards a budget when every constrained dimension
matches: ``tenant``, ``team`` (from the teams file, stamped on the row), ``user`` (user_id),
``client`` (the agent / client application), ``mcp_server`` (server id or name; tool costs) and
``model`` (the name as reported or the catalog's canonical name).
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Iterable
from decimal import Decimal
from fnmatch import fnmatchcase
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from gateledger.contracts.events import CostEntry
from gateledger.money.amounts import decimals_of
from gateledger.money.names import loose
from gateledger.money.periods import PeriodError, PeriodKind, PeriodSpec
from gateledger.money.yamlio import YamlFileError, dump_yaml, load_yaml_file, write_atomically

log = logging.getLogger(__name__)

DIMENSIONS = ("tenant", "team", "user", "client", "mcp_server", "model")
DEFAULT_THRESHOLDS = (50, 80, 100)
_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$")


class BudgetFileError(ValueError):
    """A budgets file or definition that cannot be used."""


def _is_glob(v: str) -> bool:
    return any(c in v for c in "*?[")


class Scope(BaseModel):
    """Which costs a budget counts: a conjunction over dimensions, each a set of values or globs."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    tenant: tuple[str, ...] | None = None
    team: tuple[str, ...] | None = None
    user: tuple[str, ...] | None = None
    client: tuple[str, ...] | None = None
    mcp_server: tuple[str, ...] | None = None
    model: tuple[str, ...] | None = None

    @field_validator(*DIMENSIONS, mode="before")
    @classmethod
    def _listify(cls, v: Any) -> Any:
        if v is None:
            return None
        values = [v] if isinstance(v, str | int) else list(v)
        out = tuple(str(x).strip() for x in values)
        if not out or any(not x for x in out):
            raise ValueError("scope values must be non-empty strings")
        return out

    def constrained(self) -> dict[str, tuple[str, ...]]:
        """The dimensions this scope constrains."""
        return {d: v for d in DIMENSIONS if (v := getattr(self, d)) is not None}

    @staticmethod
    def value_matches(dimension: str, allowed: tuple[str, ...], candidates: Iterable[str | None]) -> bool:
        """True when any non-empty candidate value matches any allowed value or glob of the dimension."""
        cands = [c for c in candidates if c]
        if dimension == "model":
            return any(fnmatchcase(loose(c), loose(a)) for a in allowed for c in cands)
        return any((fnmatchcase(c, a) if _is_glob(a) else c == a) for a in allowed for c in cands)

    def matches_cost(self, cost: CostEntry) -> bool:
        """Whether a cost row counts towards this scope."""
        values: dict[str, list[str | None]] = {
            "tenant": [cost.tenant],
            "team": [cost.team],
            "user": [cost.user_id],
            "client": [cost.client_id],
            "mcp_server": [cost.mcp_server_id, cost.mcp_server_name],
            "model": [cost.model, cost.priced_model],
        }
        return all(self.value_matches(d, allowed, values[d]) for d, allowed in self.constrained().items())

    def labels(self) -> dict[str, str]:
        """The scope as a flat string map (alerts, snapshots)."""
        return {d: ",".join(v) for d, v in self.constrained().items()}

    def single_tenant(self) -> str | None:
        """The tenant when the scope names exactly one (no glob)."""
        if self.tenant and len(self.tenant) == 1 and not _is_glob(self.tenant[0]):
            return self.tenant[0]
        return None


class Budget(BaseModel):
    """One budget definition."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = ""
    name: str
    description: str | None = None
    scope: Scope = Field(default_factory=Scope)
    period: PeriodKind
    timezone: str = "UTC"
    hours: int | None = None
    limit_usd: Decimal
    thresholds: tuple[int, ...] = DEFAULT_THRESHOLDS
    action: Literal["alert", "block"] = "alert"
    projection: bool = True
    # The projection waits until this fraction of the period has elapsed (a first hour's spend says
    # little about a month).
    projection_min_elapsed: Decimal = Decimal("0.1")

    @field_validator("name")
    @classmethod
    def _name(cls, v: str) -> str:
        if not _ID.match(v):
            raise ValueError("name must be 1-128 of letters, digits, '.', '_', '-' (starting with a letter/digit)")
        return v

    @field_validator("limit_usd", mode="before")
    @classmethod
    def _limit_exact(cls, v: Any) -> Any:
        if isinstance(v, float):
            raise ValueError("limit_usd must be a quoted decimal (floats are inexact)")
        return v

    @field_validator("thresholds", mode="before")
    @classmethod
    def _thresholds(cls, v: Any) -> Any:
        values = sorted({int(x) for x in v})
        if not values or any(x < 1 or x > 1000 for x in values):
            raise ValueError("thresholds are percentages between 1 and 1000")
        return tuple(values)

    @model_validator(mode="after")
    def _valid(self) -> Budget:
        if not self.id:
            object.__setattr__(self, "id", self.name)
        if not _ID.match(self.id):
            raise ValueError(f"bad budget id {self.id!r}")
        if self.limit_usd <= 0 or decimals_of(self.limit_usd) > 12:
            raise ValueError("limit_usd must be > 0 with at most 12 decimals")
        if not Decimal(0) < self.projection_min_elapsed < Decimal(1):
            raise ValueError("projection_min_elapsed is a fraction between 0 and 1")
        try:
            self.spec  # noqa: B018 - validates timezone / hours
        except PeriodError as exc:
            raise ValueError(str(exc)) from None
        return self

    @property
    def spec(self) -> PeriodSpec:
        return PeriodSpec(self.period, self.timezone, self.hours)

    @property
    def tenant_label(self) -> str:
        """The tenant alerts and snapshots are filed under: the scope's tenant, or ``*`` for cross-tenant budgets."""
        return self.scope.single_tenant() or "*"

    def to_file_dict(self) -> dict[str, Any]:
        """The definition as written in the budgets file (defaults left out)."""
        out: dict[str, Any] = {"name": self.name}
        if self.id != self.name:
            out["id"] = self.id
        if self.description:
            out["description"] = self.description
        scope = {d: (v[0] if len(v) == 1 else list(v)) for d, v in self.scope.constrained().items()}
        if scope:
            out["scope"] = scope
        out["period"] = self.period.value
        if self.period is not PeriodKind.ROLLING:
            out["timezone"] = self.timezone
        else:
            out["hours"] = self.hours
        out["limit_usd"] = format(self.limit_usd, "f")
        out["thresholds"] = list(self.thresholds)
        out["action"] = self.action
        if not self.projection:
            out["projection"] = False
        if self.projection_min_elapsed != Decimal("0.1"):
            out["projection_min_elapsed"] = format(self.projection_min_elapsed, "f")
        return out


class BudgetSet(BaseModel):
    """All budgets of a file; names and ids are unique."""

    model_config = ConfigDict(extra="forbid")

    budgets: list[Budget] = Field(default_factory=list)

    @model_validator(mode="after")
    def _unique(self) -> BudgetSet:
        for attr in ("id", "name"):
            seen: set[str] = set()
            for b in self.budgets:
                value = getattr(b, attr)
                if value in seen:
                    raise ValueError(f"two budgets with {attr} {value!r}")
                seen.add(value)
        return self

    def get(self, key: str) -> Budget | None:
        """A budget by id or name."""
        return next((b for b in self.budgets if key in (b.id, b.name)), None)

    def with_budget(self, budget: Budget, replace: bool = False) -> BudgetSet:
        """A copy with the budget added (or replacing the one with the same name when ``replace``)."""
        existing = self.get(budget.name) or self.get(budget.id)
        if existing is not None and not replace:
            raise BudgetFileError(f"a budget named {existing.name!r} already exists (use --replace)")
        kept = [b for b in self.budgets if b is not existing]
        return BudgetSet(budgets=[*kept, budget])

    def matching(self, cost: CostEntry) -> list[Budget]:
        """The budgets a cost row counts towards."""
        return [b for b in self.budgets if b.scope.matches_cost(cost)]

    def to_yaml(self) -> str:
        return dump_yaml({"budgets": [b.to_file_dict() for b in self.budgets]})


def parse_budgets(data: Any, where: str = "budgets") -> BudgetSet:
    """Validate parsed YAML as a budgets file."""
    if data is None:
        return BudgetSet()
    if not isinstance(data, dict):
        raise BudgetFileError(f"{where}: expected `budgets: [...]`")
    try:
        return BudgetSet.model_validate(data)
    except ValidationError as exc:
        raise BudgetFileError(f"{where}: {exc}") from None


def load_budgets(path: Path | None) -> BudgetSet:
    """Read the budgets file (no file yet: no budgets)."""
    if path is None or not path.exists():
        return BudgetSet()
    try:
        return parse_budgets(load_yaml_file(path), str(path))
    except YamlFileError as exc:
        raise BudgetFileError(str(exc)) from None


def save_budgets(path: Path, budgets: BudgetSet) -> None:
    """Write the budgets file atomically."""
    write_atomically(path, "# gateledger budgets (see docs/money.md)\n" + budgets.to_yaml())


class BudgetsLoader:
    """The current budgets, re-read when the file changes (a broken edit keeps the last good set)."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stamp = self._stat()
        self._budgets = load_budgets(path)
        self.last_error: str | None = None

    def _stat(self) -> tuple[int, int] | None:
        try:
            st = os.stat(self.path)
        except OSError:
            return None
        return (st.st_mtime_ns, st.st_size)

    def current(self) -> BudgetSet:
        """The budgets to account with now."""
        stamp = self._stat()
        if stamp != self._stamp:
            self._stamp = stamp
            try:
                self._budgets = load_budgets(self.path)
                self.last_error = None
                log.info("budgets reloaded: %d budgets", len(self._budgets.budgets))
            except BudgetFileError as exc:
                self.last_error = str(exc)
                log.error("budgets not reloaded, keeping the previous %d: %s", len(self._budgets.budgets), exc)
        return self._budgets
