"""Notifier settings (``GATELEDGER_NOTIFIER_*``)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateledger import jsonutil
from gateledger.money.yamlio import load_yaml_file


class WebhookTarget(BaseModel):
    """One receiver of alerts."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str = Field(pattern=r"^[A-Za-z0-9._-]{1,64}$")
    url: str
    format: Literal["generic", "slack"] = "generic"
    headers: dict[str, str] = Field(default_factory=dict)
    # When set, the body is signed: X-Gateledger-Signature-256: sha256=<hex HMAC-SHA256 of the body>.
    secret: SecretStr | None = None
    # Only alerts of these budgets / kinds (empty: all).
    budgets: list[str] = Field(default_factory=list)
    kinds: list[Literal["threshold", "projected"]] = Field(default_factory=list)
    # What this webhook receives: ledger budget alerts (budget.alerts) and/or Alertmanager
    # notifications relayed from POST /alertmanager (empty: both).
    sources: list[Literal["budget_alerts", "alertmanager"]] = Field(default_factory=list)

    @field_validator("url")
    @classmethod
    def _http(cls, v: str) -> str:
        if not v.startswith(("http://", "https://")):
            raise ValueError("webhook url must be http(s)://")
        return v


class NotifierSettings(BaseSettings):
    """How the notifier consumes, delivers and retries."""

    model_config = SettingsConfigDict(env_prefix="GATELEDGER_NOTIFIER_", extra="ignore")

    group_id: str = "gateledger-notifier"
    # Webhooks as JSON ([{"name": ..., "url": ..., "format": "slack"}]) or in a YAML file (`webhooks: [...]`).
    webhooks: str = ""
    webhooks_file: Path | None = None
    timeout_s: float = 10.0
    # Exponential backoff between attempts, capped; after give_up_after_s the alert is dead-lettered.
    retry_initial_s: float = 1.0
    retry_max_s: float = 60.0
    give_up_after_s: float = 86400.0
    # /metrics, /healthz and POST /alertmanager on loopback (0: a free port).
    host: str = "127.0.0.1"
    port: int = 0
    # POST /alertmanager: a bearer token Alertmanager must send (webhook_configs.http_config.authorization;
    # unset: none asked, for loopback and private networks), and how long one notification may be
    # retried against a webhook before the answer is 503 and Alertmanager's own retry takes over.
    alertmanager_token: SecretStr | None = None
    alertmanager_deliver_within_s: float = 8.0
    # Larger bodies are refused (413 too_large, dead-lettered): Alertmanager's own payloads are far smaller.
    alertmanager_max_body_bytes: int = 4 * 1024 * 1024
    # A body not received within this is refused (408 body_timeout; a slow-loris sender holds nothing).
    alertmanager_body_read_timeout_s: float = 30.0
    # Per caller (the token when it is right, else the peer address): 429 + Retry-After beyond these.
    # Alertmanager sends one request per group per group_interval; an HA pair with thousands of groups
    # may send a few thousand at once after a restart: the burst holds that.
    alertmanager_rate_limit_per_s: float = 500.0
    alertmanager_rate_limit_burst: int = 2000
    alertmanager_max_concurrent: int = 64
    # 401, 408 and 429 refusals are written as one dead letter per caller, reason and window (with a count).
    alertmanager_refusal_window_s: float = 10.0

    def targets(self) -> list[WebhookTarget]:
        """The configured webhooks (names unique)."""
        raw: list[Any] = []
        if self.webhooks.strip():
            parsed = jsonutil.loads(self.webhooks)
            raw.extend(parsed if isinstance(parsed, list) else [parsed])
        if self.webhooks_file is not None:
            data = load_yaml_file(self.webhooks_file) or {}
            raw.extend(data.get("webhooks", []) if isinstance(data, dict) else [])
        targets = [WebhookTarget.model_validate(r) for r in raw]
        names = [t.name for t in targets]
        if len(set(names)) != len(names):
            raise ValueError(f"webhook names must be unique: {names}")
        return targets
