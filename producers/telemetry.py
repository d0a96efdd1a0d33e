"""Prometheus metrics of the producers, named once here (every name starts ``gateledger_ingest_``).

``source`` labels: the endpoint or poller a record came through (``obot-shim``, ``obot-webhook``,
``cloudevents``, ``axonflow-tap``, ``obot-poller-mcp``, ``obot-poller-llm``) or, for the generic
endpoint and ``gateledger ingest``, the format name.
"""

from __future__ import annotations

from prometheus_client import Counter, Gauge, Histogram

ACCEPTED = Counter(
    "gateledger_ingest_accepted_events_total", "Events acknowledged by Kafka, per source.", ["source"]
)
REJECTED = Counter(
    "gateledger_ingest_rejected_records_total", "Records rejected at ingest, per source and reason.", ["source", "reason"]
)
DEAD_LETTERED = Counter(
    "gateledger_ingest_dead_lettered_total", "Dead letters published by the producers.", ["source", "reason"]
)
IGNORED = Counter(
    "gateledger_ingest_ignored_records_total",
    "Records skipped on the upstream's own instruction (Obot's obot.mcp.ignoreAuditLog metadata).",
    ["source"],
)
PUBLISH_FAILURES = Counter(
    "gateledger_ingest_publish_failures_total", "Batches Kafka did not acknowledge in time.", ["source"]
)
PUBLISH_LATENCY = Histogram(
    "gateledger_ingest_publish_duration_seconds",
    "Time from send to broker acknowledgement of a batch.",
    ["source"],
    buckets=(0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10),
)
HTTP_REQUESTS = Counter(
    "gateledger_ingest_http_requests_total", "HTTP requests answered, per route and status.", ["route", "status"]
)
OBOT_FORWARD = Counter(
    "gateledger_ingest_obot_forward_total",
    "Shim batches forwarded to the real Obot (tee mode), per outcome (ok, rejected, unreachable).",
    ["outcome"],
)
WEBHOOK_DECISIONS = Counter(
    "gateledger_ingest_webhook_decisions_total", "Webhook-filter verdicts, per filter and decision.", ["filter", "decision"]
)
WEBHOOK_REPLAYS = Counter(
    "gateledger_ingest_webhook_replays_total",
    "Signed webhook deliveries re-sent byte for byte within the replay window (answered, not recorded again).",
    ["filter"],
)
TAP_REQUESTS = Counter(
    "gateledger_ingest_axonflow_tap_requests_total",
    "Requests proxied to AxonFlow, per kind (precheck, llm_audit, passthrough) and upstream status.",
    ["kind", "status"],
)
TAP_UPSTREAM_LATENCY = Histogram(
    "gateledger_ingest_axonflow_upstream_duration_seconds",
    "Time AxonFlow took to answer a proxied request.",
    ["kind"],
    buckets=(0.001, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30),
)
POLLER_RECORDS = Counter(
    "gateledger_ingest_poller_records_total", "Records the Obot poller fetched and published.", ["stream"]
)
POLLER_ERRORS = Counter(
    "gateledger_ingest_poller_errors_total", "Obot poller cycles that failed (and were retried).", ["stream", "kind"]
)
POLLER_WATERMARK = Gauge(
    "gateledger_ingest_poller_watermark_seconds",
    "Event time (Unix seconds) up to which the Obot poller has published, per stream.",
    ["stream"],
)
POLLER_DETAILS = Counter(
    "gateledger_ingest_poller_details_total",
    "Obot audit detail look-ups (GET /api/mcp-audit-logs/detail/{id}) by result: fetched, cached, missing.",
    ["result"],
)
POLLER_ENDPOINT = Gauge(
    "gateledger_ingest_poller_endpoint_present",
    "1 when the Obot list endpoint of a stream exists on the polled server, 0 when it answered 404.",
    ["stream"],
)
ENFORCEMENT_DECISIONS = Counter(
    "gateledger_ingest_enforcement_decisions_total",
    "Budget enforcement decisions, per path (webhook, precheck) and outcome (allowed, blocked, stale_allowed,"
    " stale_blocked).",
    ["path", "outcome"],
)
BUDGET_VIEW_AGE = Gauge(
    "gateledger_ingest_budget_view_age_seconds",
    "Seconds since the ingest's budget view was last known to hold everything on budget.state"
    " (since start-up while it has not caught up yet).",
)
BUDGET_VIEW_SNAPSHOTS = Gauge(
    "gateledger_ingest_budget_view_snapshots", "Budget period snapshots held by the ingest's enforcement view."
)
