"""Which team a user belongs to (``GATELEDGER_TEAMS_FILE``), so costs and budgets can be scoped by team.

File format::

    teams:
      ml-platform: [alice, bob]
      research: [carol]

A user belongs to at most one team (a cost row carries one team); listing a user twice is an error.
The team is resolved when a cost row is computed and stored on it, so later edits of the file do
not silently move history between teams.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from gateledger.money.yamlio import YamlFileError, load_yaml_file


class TeamsFileError(ValueError):
    """A teams file that cannot be used."""


@dataclass(frozen=True)
class TeamDirectory:
    """user id -> team."""

    by_user: Mapping[str, str] = field(default_factory=dict)

    def team_of(self, user_id: str | None) -> str | None:
        """The user's team, or None."""
        return self.by_user.get(user_id) if user_id else None

    def members(self, team: str) -> list[str]:
        return sorted(u for u, t in self.by_user.items() if t == team)

    @classmethod
    def from_data(cls, data: Any, where: str = "teams") -> TeamDirectory:
        """Build from parsed YAML."""
        if data is None:
            return cls()
        if not isinstance(data, Mapping) or not isinstance(data.get("teams", {}), Mapping):
            raise TeamsFileError(f"{where}: expected `teams: {{team: [user, ...]}}`")
        by_user: dict[str, str] = {}
        for team, members in (data.get("teams") or {}).items():
            if not isinstance(members, list) or not all(isinstance(m, str | int) for m in members):
                raise TeamsFileError(f"{where}: team {team!r} must list user ids")
            for m in members:
                user = str(m)
                if user in by_user and by_user[user] != str(team):
                    raise TeamsFileError(f"{where}: user {user!r} is in both {by_user[user]!r} and {team!r}")
                by_user[user] = str(team)
        return cls(by_user)

    @classmethod
    def load(cls, path: Path | None) -> TeamDirectory:
        """Read the teams file (an empty directory when no file is configured)."""
        if path is None:
            return cls()
        try:
            return cls.from_data(load_yaml_file(path), str(path))
        except YamlFileError as exc:
            raise TeamsFileError(str(exc)) from None
