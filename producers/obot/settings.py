"""Obot audit API poller settings (``GATELEDGER_OBOT_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict


class ObotPollerSettings(BaseSettings):
    """Where the Obot API is and how to page through it. Unset ``url``: no poller."""

    model_config = SettingsConfigDict(env_prefix="GATELEDGER_OBOT_", extra="ignore")

    url: str | None = None  # e.g. https://obot.example.com (the /api/... paths are appended)
    token: SecretStr | None = None  # an Obot API key of an admin or auditor
    tenant: str = "default"
    install: str = "default"
    streams: list[Literal["mcp", "llm"]] = Field(default_factory=lambda: ["mcp", "llm"])
    interval_s: float = 10.0
    page_size: int = 500
    # Each cycle re-reads this much event time before the watermark, so that records Obot stores
    # late (the shim flushes every 5 s and retries failed batches) are still found. Records
    # already published inside the window are remembered in the checkpoint and skipped.
    overlap_s: float = 120.0
    # A fresh checkpoint starts this far back.
    initial_lookback_s: float = 24 * 3600.0
    timeout_s: float = 30.0
    backoff_min_s: float = 1.0
    backoff_max_s: float = 60.0
    # Which Obot version line answers: auto (detected: /api/llm-audit-logs exists from v0.24 on),
    # flat (v0.23 and earlier) or event (v0.24 and later). See docs/ingest.md, version matrix.
    api: Literal["auto", "flat", "event"] = "auto"
    # v0.24+ list items carry no details (session / request ids, client version, device): fetch
    # GET /api/mcp-audit-logs/detail/{id} for each new record, this many at once, cached.
    fetch_details: bool = True
    detail_concurrency: int = Field(default=8, ge=1, le=64)
    detail_cache_size: int = Field(default=10_000, ge=0)
    # An endpoint this Obot does not have (the LLM audit list before v0.24) is asked again this often.
    probe_interval_s: float = 600.0
    # Default: <data dir>/obot-poller
    checkpoint_dir: Path | None = None
