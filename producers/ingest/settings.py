"""Ingest service settings (``GATELEDGER_INGEST_*``)."""

from __future__ import annotations

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class IngestSettings(BaseSettings):
    """The HTTP ingest service."""

    model_config = SettingsConfigDict(env_prefix="GATELEDGER_INGEST_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8480
    max_body_bytes: int = 10 * 1024 * 1024
    default_tenant: str = "default"
    # Names the Obot installation in event sources (obot/<install>/mcp).
    install: str = "default"
    # Bearer tokens accepted on ingest endpoints, each mapped to the tenant it speaks for:
    # {"token": "tenant"}. Empty: no authentication (the embedded default, loopback only).
    tokens: dict[str, str] = Field(default_factory=dict)
    # Shared secret of the Obot webhook filter (X-Obot-Signature-256).
    webhook_secret: SecretStr | None = None
