"""``gateledger bench``: every benchmark scenario, measured against a raw-Kafka-to-chDB baseline in the same run.

Scenarios (each in its own process: chDB allows one data directory per process):
baseline, stages, end-to-end, queries, memory. ``all`` runs them in that order and can rewrite
docs/benchmarks.md. Results are plain JSON-able dicts.
"""
