"""Running the stream processors (``gateledger serve processors``)."""

from __future__ import annotations

import faust

from stream_processors.app import create_app


def main() -> None:
    """Run the faust worker until SIGTERM or SIGINT."""
    app = create_app()
    worker = faust.Worker(app, loglevel="INFO", quiet=True, override_logging=False)
    worker.execute_from_commandline()
