"""Ingest service settings (``GATELEDGER_INGEST_*``)."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field, SecretStr, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict


class TokenGrant(BaseModel):
    """What a bearer token speaks for: a tenant and the upstream installation it names."""

    tenant: str = "default"
    install: str | None = None  # None: the service's default install
    # This token's own rate limit (requests per second, burst) instead of the service's: a relay
    # token may need more, a tenant's less. None: GATELEDGER_INGEST_RATE_LIMIT_PER_S / _BURST.
    rate_limit_per_s: float | None = None
    rate_limit_burst: int | None = None


class WebhookFilter(BaseModel):
    """A named Obot webhook filter (``POST /v1/obot/webhook/{name}``) with its own secret."""

    secret: SecretStr
    tenant: str = "default"
    install: str | None = None


class IngestSettings(BaseSettings):
    """The HTTP ingest service."""

    model_config = SettingsConfigDict(env_prefix="GATELEDGER_INGEST_", extra="ignore")

    host: str = "127.0.0.1"
    port: int = 8480
    # Processes serving the port together (SO_REUSEPORT); ingest is CPU-bound, one core each.
    workers: int = 1
    max_body_bytes: int = 10 * 1024 * 1024
    # The largest single event (its Kafka value); larger records are refused with too_large and
    # dead-lettered. Raise it only together with the broker's message.max.bytes (the producer's
    # max_request_size follows this setting).
    max_record_bytes: int = 1_000_000
    # Per caller (a known bearer token, else the peer address): requests per second and burst, and
    # requests in flight; beyond them 429 + Retry-After. 0 turns a limit off.
    rate_limit_per_s: float = 2000.0
    rate_limit_burst: int = 4000
    max_concurrent_per_caller: int = 64
    # A request body must arrive within this long (slow-loris senders hold a connection otherwise): 408.
    body_read_timeout_s: float = 30.0
    # Refusals that keep no body (401, 408, 429, a stranger's bad header, ...) are written as one dead
    # letter per caller, route, reason and window, with a count (gateledger/refusals.py): at most
    # refusal_max_keys letters (plus one per reason beyond them) per window, whatever a flood's size.
    refusal_window_s: float = 10.0
    refusal_max_keys: int = 1000
    default_tenant: str = "default"
    # Names the Obot installation in event sources (obot/<install>/mcp).
    install: str = "default"
    # Bearer tokens accepted on ingest endpoints: {"token": "tenant"} or
    # {"token": {"tenant": "acme", "install": "prod"}}. Tenant "*" makes a relay token (an internal
    # gateway, the simulator) whose records name their own tenants. Empty: no authentication (the
    # embedded default, loopback only).
    tokens: dict[str, TokenGrant] = Field(default_factory=dict)
    # Shared secret of the Obot webhook filter (X-Obot-Signature-256) on POST /v1/obot/webhook.
    # Unset: deliveries are accepted unsigned (loopback default); set: every delivery must be signed.
    webhook_secret: SecretStr | None = None
    # A signed delivery re-sent byte for byte within this many seconds is answered with the first
    # verdict and not recorded again (producers/obot/replay.py); 0 turns it off.
    webhook_replay_window_s: float = 300.0
    # More filters, one per Obot installation / tenant: {"name": {"secret": "...", "tenant": "acme"}}.
    webhook_filters: dict[str, WebhookFilter] = Field(default_factory=dict)
    # Tee mode of the shim endpoint: the real Obot's audit endpoint, e.g.
    # https://obot.example.com/api/mcp-audit-logs. Batches are forwarded there after Kafka acked.
    obot_forward_url: str | None = None
    obot_forward_timeout_s: float = 8.0
    # How long a token Obot accepted stays trusted without asking again (tee mode).
    obot_token_cache_s: float = 300.0
    # AxonFlow tap: the real AxonFlow URL. Set: the tap is served under /axonflow on this port
    # (and at the root of axonflow_port, when that is set).
    axonflow_upstream_url: str | None = None
    axonflow_port: int | None = None
    axonflow_timeout_s: float = 60.0
    # Tokens of AxonFlow tap callers and the tenants each may speak for: {"token": ["acme"]}
    # ("*": any). The `tokens` above count too. Any token configured: the tap is default-deny.
    axonflow_tokens: dict[str, list[str]] = Field(default_factory=dict)
    # How long a request may wait for Kafka's acknowledgement before the caller gets 503. Below
    # the Obot shim's 10 s client timeout, so the shim sees our answer rather than its own timeout.
    publish_timeout_s: float = 8.0
    retry_after_s: int = 2
    # Budget enforcement on the webhook filter and the AxonFlow pre-check (docs/ingest.md). Unset: on
    # whenever the budgets file (GATELEDGER_BUDGETS_FILE) defines a budget with action `block`.
    enforce_budgets: bool | None = None
    # The budget view is stale when it was last known to hold all of budget.state longer ago than this.
    enforce_stale_after_s: float = 30.0
    # A stale view and a call some block budget covers: "open" decides from what the view holds
    # (an outage of the budget stage does not stop traffic), "closed" refuses the call.
    enforce_when_stale: Literal["open", "closed"] = "open"
    # JSON-RPC methods the webhook filter enforces budgets on (the ones that cost money).
    enforce_methods: list[str] = Field(default_factory=lambda: ["tools/call"])
    # Also serve the budget gauges (gateledger_budget_*) on /metrics, computed from the view at each
    # scrape. Off by default: the processors' budget stage exports them; turn on where it does not.
    budget_gauges: bool = False

    @field_validator("tokens", mode="before")
    @classmethod
    def _tenant_shorthand(cls, v: Any) -> Any:
        # {"token": "tenant"} is the short form (and the form compose/.env uses).
        if isinstance(v, dict):
            return {k: ({"tenant": g} if isinstance(g, str) else g) for k, g in v.items()}
        return v
