"""The ``gateledger`` command line. Each command imports what it needs, so ``--help`` stays fast."""

from __future__ import annotations

import asyncio
import logging
import sys
from pathlib import Path
from typing import Any

import click


def _setup_logging(level: str | None = None) -> None:
    from gateledger.settings import CoreSettings

    logging.basicConfig(
        level=(level or CoreSettings().log_level).upper(),
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        stream=sys.stderr,
    )


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def cli() -> None:
    """gateledger: one audit and analytics pipeline for AI gateways (Obot MCP gateway, AxonFlow).

    Events go producers -> Kafka -> stream processors -> Kafka -> sink -> ClickHouse.
    Configuration comes from GATELEDGER_* environment variables; the defaults run the embedded stack.
    """


# --- up ---------------------------------------------------------------------------------------


@cli.command()
@click.option("--demo", is_flag=True, help="Also run simulated multi-tenant traffic into the ingest service.")
@click.option("--duration", type=float, default=None, help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--rate", type=float, default=50.0, show_default=True, help="Demo: interactions per second.")
@click.option("--seed", type=int, default=42, show_default=True, help="Demo: random seed (deterministic traffic).")
def up(demo: bool, duration: float | None, rate: float, seed: int) -> None:
    """Start the embedded stack: Tansu broker, processors, sink + chDB, ingest HTTP (Ctrl-C stops it)."""
    from gateledger.cli.summary import stack_summary
    from gateledger.settings import Settings
    from gateledger.stack.supervisor import Supervisor

    _setup_logging("WARNING")
    sup = Supervisor(
        Settings(),
        demo=demo,
        demo_args=["--rate", str(rate), "--seed", str(seed)],
        duration_s=duration,
        summary=stack_summary,
    )
    sys.exit(asyncio.run(sup.run()))


# --- ingest -----------------------------------------------------------------------------------


@cli.command()
@click.option("--format", "fmt", required=True, help="Upstream wire format of the records (see below).")
@click.option("--tenant", default="default", show_default=True, help="Tenant the records belong to.")
@click.option("--install", default="default", show_default=True, help="Name of the upstream installation.")
@click.argument("file", type=click.Path(exists=True, dir_okay=False, allow_dash=True, path_type=Path))
def ingest(fmt: str, tenant: str, install: str, file: Path) -> None:
    """Publish a JSONL or JSON-array FILE of upstream records through the producer path.

    FORMAT is one of: obot-audit, obot-audit-event, obot-llm, obot-webhook, axonflow-precheck,
    axonflow-llm-call, cloudevents. Invalid records are reported here and dead-lettered; the
    valid ones are published (exit code 1 if any record was rejected).
    """
    from gateledger.cli.ingest_file import ingest_file

    _setup_logging("WARNING")
    sys.exit(asyncio.run(ingest_file(fmt, file, tenant=tenant, install=install)))


# --- sql --------------------------------------------------------------------------------------


@cli.command()
@click.argument("query", required=False)
@click.option("-f", "--file", "sql_file", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Read the query from a file instead.")
@click.option("-p", "--param", "params", multiple=True, metavar="NAME=VALUE",
              help="Bind {NAME:Type} in the query (server-side; repeatable). Array/Map/Tuple take JSON; "
                   "Nullable takes \\N for NULL.")
@click.option("--format", "fmt", type=click.Choice(["table", "vertical", "csv", "tsv", "jsonl", "json"]),
              default="table", show_default=True,
              help="Output format (table cuts long values; vertical, csv, tsv, jsonl and json never do).")
def sql(query: str | None, sql_file: Path | None, params: tuple[str, ...], fmt: str) -> None:
    """Run a ClickHouse query against gateledger's data (through the running stack if there is one)."""
    from gateledger.cli.render import render
    from gateledger.clickhouse.access import QueryError, open_querier
    from gateledger.clickhouse.client import ChdbLocked

    if sql_file is not None:
        query = sql_file.read_text()
    if not query:
        raise click.UsageError("give a QUERY or --file")
    from gateledger.cli.params import ParamError, bind_params

    try:
        bound = bind_params(query, list(params))
    except ParamError as exc:
        raise click.UsageError(str(exc)) from None
    try:
        querier = open_querier()
    except ChdbLocked as exc:
        raise click.ClickException(str(exc)) from None
    try:
        result = querier.run(query, bound)
    except QueryError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        querier.close()
    click.echo(render(result, fmt), nl=False)


# --- status -----------------------------------------------------------------------------------


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Machine-readable output.")
def status(as_json: bool) -> None:
    """Show the stack, each consumer group's lag and each table's row count."""
    from gateledger.cli.status import print_status

    _setup_logging("ERROR")
    sys.exit(print_status(as_json))


# --- migrate ----------------------------------------------------------------------------------


@cli.command()
def migrate() -> None:
    """Apply pending ClickHouse schema migrations (idempotent)."""
    from gateledger.clickhouse.client import ChdbLocked, connect
    from gateledger.clickhouse.migrate import MigrationError, applied, migrate as run_migrations
    from gateledger.settings import Settings
    from gateledger.stack.state import load_running

    settings = Settings()
    if settings.clickhouse.is_chdb(settings.core) and load_running(settings.core.data_dir):
        click.echo("the running stack's sink applies migrations at start; nothing to do while it runs")
        return
    try:
        client = connect(settings.clickhouse, settings.core)
    except ChdbLocked as exc:
        raise click.ClickException(str(exc)) from None
    try:
        done = run_migrations(client, settings.clickhouse)
        for m in done:
            click.echo(f"applied {m.version:04d}_{m.name}")
        total = len(applied(client, settings.clickhouse))
        click.echo(f"schema up to date ({total} migrations applied, {len(done)} now)")
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        client.close()


# --- serve ------------------------------------------------------------------------------------


@cli.group()
def serve() -> None:
    """Run one service in the foreground (what `up` and the compose containers run)."""


@serve.command("sink")
def serve_sink() -> None:
    """The ClickHouse sink (consumes output and raw topics, lands them in ClickHouse)."""
    from sinks.clickhouse.main import main as sink_main

    _setup_logging()
    sink_main()


@serve.command("ingest")
def serve_ingest() -> None:
    """The ingest HTTP service (Obot, AxonFlow, webhook filter, CloudEvents endpoints)."""
    from producers.ingest.server import main as ingest_main

    _setup_logging()
    ingest_main()


@serve.command("processors")
def serve_processors() -> None:
    """The faust stream-processing worker."""
    from stream_processors.main import main as processors_main

    _setup_logging()
    processors_main()


# --- simulate ---------------------------------------------------------------------------------


@cli.command()
@click.option("--target", required=True, help="Ingest service base URL, e.g. http://127.0.0.1:8480")
@click.option("--rate", type=float, default=50.0, show_default=True, help="Interactions per second (0: as fast as possible).")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed: the same seed gives the same traffic.")
@click.option("--count", type=int, default=None, help="Stop after this many interactions (default: forever).")
@click.option("--tenants", type=int, default=3, show_default=True, help="Number of tenants.")
def simulate(target: str, rate: float, seed: int, count: int | None, tenants: int) -> None:
    """Send realistic multi-tenant traffic, in the upstream wire formats, to an ingest service."""
    from producers.simulator.run import run_simulation

    _setup_logging("WARNING")
    sys.exit(asyncio.run(run_simulation(target, rate=rate, seed=seed, count=count, tenants=tenants)))


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="gateledger")


if __name__ == "__main__":
    main()
