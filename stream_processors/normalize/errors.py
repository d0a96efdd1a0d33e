"""Why an event could not be normalized (becomes a dead letter with this reason)."""

from __future__ import annotations


class InvalidEvent(ValueError):
    """An envelope or its data is not what its type promises. ``reason`` is a short code."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(message)
        self.reason = reason


def schema_error(what: str, exc: Exception) -> InvalidEvent:
    """An InvalidEvent from a pydantic ValidationError (first few errors, readable)."""
    errors = getattr(exc, "errors", None)
    if callable(errors):
        parts = [
            f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in errors()[:5]  # type: ignore[index]
        ]
        return InvalidEvent("schema", f"not a valid {what}: {'; '.join(parts)}")
    return InvalidEvent("schema", f"not a valid {what}: {exc}")
