"""Logging for the command line's commands (to stderr, at GATELEDGER_LOG_LEVEL unless told)."""

from __future__ import annotations

import logging
import sys


def setup_logging(level: str | None = None) -> None:
    """Log to stderr at ``level`` (default: the core settings' level)."""
    from gateledger.settings import CoreSettings

    logging.basicConfig(
        level=(level or CoreSettings().log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )
