"""`gateledger serve ...`: one service in the foreground (each imports its stage only when run)."""

from __future__ import annotations

import click

from gateledger_cli.logs import setup_logging


@click.group()
def serve() -> None:
    """Run one service in the foreground (what `up` and the compose containers run)."""


@serve.command("sink")
def serve_sink() -> None:
    """The ClickHouse sink (consumes output and raw topics, lands them in ClickHouse)."""
    from sinks.clickhouse.main import main as sink_main

    setup_logging()
    sink_main()


@serve.command("ingest")
def serve_ingest() -> None:
    """The ingest HTTP service (Obot, AxonFlow, webhook filter, CloudEvents endpoints)."""
    from producers.ingest.server import main as ingest_main

    setup_logging()
    ingest_main()


@serve.command("notifier")
def serve_notifier() -> None:
    """The budget-alert notifier (budget.alerts -> webhooks, generic JSON or Slack)."""
    from sinks.notifier.main import main as notifier_main

    setup_logging()
    notifier_main()


@serve.command("poller")
def serve_poller() -> None:
    """The Obot audit API poller (GATELEDGER_OBOT_URL, GATELEDGER_OBOT_TOKEN; see docs/ingest.md)."""
    from producers.obot.poller import main as poller_main

    setup_logging()
    poller_main()


@serve.command("axonflow-poller")
def serve_axonflow_poller() -> None:
    """The AxonFlow audit poller (GATELEDGER_AXONFLOW_URL, _CLIENT_ID, _CLIENT_SECRET; see docs/ingest.md)."""
    from producers.axonflow.poller import main as axonflow_poller_main

    setup_logging()
    axonflow_poller_main()


@serve.command("processors")
def serve_processors() -> None:
    """The faust stream-processing worker."""
    from stream_processors.main import main as processors_main

    setup_logging()
    processors_main()
