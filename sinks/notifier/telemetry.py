"""Prometheus metrics of the notifier, named once here."""

from __future__ import annotations

from prometheus_client import Counter, Gauge

DELIVERED = Counter("gateledger_notifier_delivered_total", "Alerts delivered to a webhook.", ["webhook"])
ATTEMPTS = Counter("gateledger_notifier_attempts_total", "POSTs to webhooks, by outcome.", ["webhook", "outcome"])
DUPLICATES = Counter("gateledger_notifier_duplicates_skipped_total",
                     "Alerts not sent again because the webhook already has them.", ["webhook"])
DEAD_LETTERS = Counter("gateledger_notifier_dead_letters_total", "Alerts or messages dead-lettered.", ["reason"])
RETRYING = Gauge("gateledger_notifier_retrying", "1 while a delivery is being retried.", ["webhook"])
ALERTMANAGER = Counter("gateledger_notifier_alertmanager_notifications_total",
                       "Alertmanager notifications received on /alertmanager, by outcome (done: every webhook has it;"
                       " retry_later: answered 503; invalid: not a v4 payload; rate_limited / concurrency_limited: 429;"
                       " body_timeout: 408).", ["outcome"])
