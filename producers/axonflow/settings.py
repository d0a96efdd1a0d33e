"""AxonFlow audit poller settings (``GATELEDGER_AXONFLOW_*``)."""

from __future__ import annotations

from pathlib import Path

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class AxonFlowPollerSettings(BaseSettings):
    """Where AxonFlow's orchestrator is and how to read its audit trail. Unset ``url``: no poller."""

    model_config = SettingsConfigDict(env_prefix="GATELEDGER_AXONFLOW_", extra="ignore")

    url: str | None = None  # AxonFlow's single endpoint, e.g. https://axonflow.example.com
    client_id: str | None = None  # Basic credentials (AxonFlow derives the tenant from the client id)
    client_secret: SecretStr | None = None
    tenant: str | None = None  # gateledger tenant of the entries; default: the entry's tenant_id
    interval_s: float = 30.0
    # Rows a page. Pages are cut by end_time (AxonFlow's search has no offset), so a page must hold more
    # rows than ever share one timestamp; as many is an error, never a skipped row.
    page_size: int = Field(default=500, ge=2, le=1000)
    # Only entries at least this old are read: the tap publishes an exchange before its caller has
    # AxonFlow's answer, so by then whatever the tap saw of the call is on Kafka ahead of the entry.
    settle_s: float = 60.0
    overlap_s: float = 300.0  # re-read before the watermark: entries AxonFlow stored late
    initial_lookback_s: float = 3600.0  # a fresh checkpoint starts this far back
    timeout_s: float = 30.0
    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0
    checkpoint_dir: Path | None = None  # default: <data dir>/axonflow-poller
