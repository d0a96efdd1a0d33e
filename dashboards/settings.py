"""Where ``gateledger dashboards push`` finds Grafana (``GATELEDGER_GRAFANA_*``)."""

from __future__ import annotations

from pydantic import SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class GrafanaSettings(BaseSettings):
    """A Grafana server and the credentials to change its dashboards and alert rules."""

    model_config = SettingsConfigDict(env_prefix="GATELEDGER_GRAFANA_", extra="ignore")

    url: str = "http://127.0.0.1:3000"
    # A service-account token (preferred), or a user and password.
    token: SecretStr | None = None
    username: str | None = None
    password: SecretStr | None = None
    org_id: int | None = None
    timeout_s: float = 10.0

    def credential(self) -> str | tuple[str, str] | None:
        """What grafana-client takes as ``credential``."""
        if self.token is not None:
            return self.token.get_secret_value()
        if self.username and self.password is not None:
            return (self.username, self.password.get_secret_value())
        return None
