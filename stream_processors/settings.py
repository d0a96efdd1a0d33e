"""Stream processor settings (``GATELEDGER_PROCESSORS_*``)."""

from __future__ import annotations

from pydantic_settings import BaseSettings, SettingsConfigDict


class ProcessorSettings(BaseSettings):
    """The faust worker."""

    model_config = SettingsConfigDict(env_prefix="GATELEDGER_PROCESSORS_", extra="ignore")

    app_id: str = "gateledger-processors"
    # faust's web server (metrics, health) binds here; never 0.0.0.0.
    host: str = "127.0.0.1"
    port: int = 6066
