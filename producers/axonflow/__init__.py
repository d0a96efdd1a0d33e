"""AxonFlow Gateway Mode: the recording reverse proxy (tap)."""
