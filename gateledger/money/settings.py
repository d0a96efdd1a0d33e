"""Money settings: where the price override, budgets and teams files are (``GATELEDGER_*_FILE``)."""

from __future__ import annotations

from pathlib import Path

from pydantic_settings import BaseSettings, SettingsConfigDict

from gateledger.settings import CoreSettings


class MoneySettings(BaseSettings):
    """Files the money stage reads; all optional."""

    model_config = SettingsConfigDict(env_prefix="GATELEDGER_", extra="ignore")

    # Your own prices, merged over the built-in catalog (your entries win).
    prices_file: Path | None = None
    # Budget definitions; `gateledger budgets add` writes here. Default: <data dir>/budgets.yaml.
    budgets_file: Path | None = None
    # user -> team mapping for team-scoped budgets.
    teams_file: Path | None = None

    def budgets_path(self, core: CoreSettings) -> Path:
        """The budgets file to read and write."""
        return (self.budgets_file or core.data_dir / "budgets.yaml").expanduser()
