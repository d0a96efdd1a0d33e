"""Prometheus metrics of the producers, named once here."""

from __future__ import annotations

from prometheus_client import Counter, Histogram

ACCEPTED = Counter(
    "gateledger_ingest_accepted_events_total", "Events acknowledged by Kafka, per source.", ["source"]
)
REJECTED = Counter(
    "gateledger_ingest_rejected_records_total", "Records rejected at ingest, per source and reason.", ["source", "reason"]
)
DEAD_LETTERED = Counter(
    "gateledger_ingest_dead_lettered_total", "Dead letters published by the producers.", ["source", "reason"]
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
