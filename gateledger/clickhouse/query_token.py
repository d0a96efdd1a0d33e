"""The sink query endpoint's bearer token: a random secret in the data directory, readable by its owner only.

The sink makes it at start-up; the CLI (`gateledger sql`, `gateledger status`, the `up` summary) reads it.
Anyone who can read the data directory can read the data anyway, so the file's mode is the boundary.
"""

from __future__ import annotations

import contextlib
import os
import secrets
from pathlib import Path

TOKEN_FILE = "query.token"


def token_path(data_dir: Path) -> Path:
    """Where the token lives."""
    return data_dir / TOKEN_FILE


def ensure_query_token(data_dir: Path) -> str:
    """The token, made (mode 0600, never world- or group-readable) if there is none yet."""
    path = token_path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    with contextlib.suppress(FileExistsError):
        # O_EXCL: two sinks starting together cannot both write; the mode is set at creation.
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(32))
    if path.stat().st_mode & 0o077:
        path.chmod(0o600)  # an older or hand-made file: tighten it rather than serve with it
    return read_query_token(data_dir) or ""


def read_query_token(data_dir: Path) -> str | None:
    """The token, or None when no sink has made one here (or it cannot be read)."""
    try:
        return token_path(data_dir).read_text().strip() or None
    except OSError:
        return None
