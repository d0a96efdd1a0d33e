"""Obot: the audit API poller (pull side; the push-side endpoints live in producers.ingest)."""
