"""The ``gateledger`` command line. Each command imports what it needs, so ``--help`` stays fast."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path
from typing import Any

import click

from gateledger_cli.logs import setup_logging


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
    from gateledger_cli.summary import stack_summary
    from gateledger.settings import Settings
    from gateledger.stack.supervisor import Supervisor

    setup_logging("WARNING")
    settings = Settings()
    # The stack's processor windows (StackSettings.processors_window_s), unless set for the processors.
    for name in ("GATELEDGER_PROCESSORS_RETENTION_S", "GATELEDGER_PROCESSORS_DEDUP_WINDOW_S"):
        os.environ.setdefault(name, f"{settings.stack.processors_window_s:g}")
    sup = Supervisor(
        settings,
        demo=demo,
        demo_args=["--rate", str(rate), "--seed", str(seed)],
        duration_s=duration,
        summary=stack_summary,
        plan=_durability_plan(settings),
    )
    sys.exit(asyncio.run(sup.run()))


def _durability_plan(settings: Any) -> Any:
    """What the supervisor drains and re-drives, from the stages' own settings."""
    from gateledger.stack.supervisor import DurabilityPlan
    from gateledger.topics import RAW_TOPICS, topic_name
    from sinks.clickhouse.main import sink_topics
    from sinks.clickhouse.settings import SinkSettings
    from stream_processors.settings import ProcessorSettings

    from gateledger.topics import Topic
    from stream_processors.budgets.stage import CONTRIBUTIONS
    from stream_processors.normalize.stage import FACTS
    from stream_processors.pipeline import internal_topic_name

    prefix, proc, sink = settings.core.topic_prefix, ProcessorSettings(), SinkSettings()
    stage_topics = [*(internal_topic_name(prefix, proc.app_id, name) for name in (FACTS, CONTRIBUTIONS)),
                    *(topic_name(t, prefix) for t in (Topic.LLM_CALLS, Topic.MCP_CALLS, Topic.COST_LEDGER))]
    from gateledger.money.budgets import BudgetFileError, load_budgets
    from gateledger.money.settings import MoneySettings
    from gateledger.stack.budget_gate import BudgetGate
    from stream_processors.budgets.backfill import MARKERS

    try:
        budgets = len(load_budgets(MoneySettings().budgets_path(settings.core)).budgets)
    except (BudgetFileError, OSError):
        budgets = 0  # the processors report the file's problem themselves
    gate = BudgetGate(budgets, proc.app_id, internal_topic_name(prefix, proc.app_id, MARKERS),
                      internal_topic_name(prefix, proc.app_id, CONTRIBUTIONS))
    return DurabilityPlan(
        budget_gate=gate,
        processors={proc.app_id: [topic_name(t, prefix) for t in RAW_TOPICS]},
        stages={proc.app_id: stage_topics},
        sink={sink.group_id: [topic_name(t, prefix) for t in sink_topics(sink)]},
        redrive_window_s=proc.retention_s,
        drain_timeout_s=settings.stack.drain_timeout_s,
    )


# --- ingest -----------------------------------------------------------------------------------


@cli.command()
@click.option("--format", "fmt", required=True, help="Upstream wire format of the records (see below).")
@click.option("--tenant", default="default", show_default=True, help="Tenant the records belong to.")
@click.option("--install", default="default", show_default=True, help="Name of the upstream installation.")
@click.argument("file", type=click.Path(exists=True, dir_okay=True, allow_dash=True, path_type=Path))
def ingest(fmt: str, tenant: str, install: str, file: Path) -> None:
    """Publish a JSONL or JSON-array FILE (or every *.jsonl / *.json under a folder) of upstream records.

    FORMAT is one of: obot-audit, obot-audit-event, obot-llm, obot-export (an Obot audit-log
    export, MCP or LLM, as Obot writes it), obot-webhook, axonflow-precheck, axonflow-llm-call,
    cloudevents. Invalid records are reported here and dead-lettered; the valid ones are published
    (exit code 1 if any record was rejected). Ids come from the records: ingesting the same export
    again adds nothing.
    """
    from gateledger_cli.ingest_file import ingest_file

    setup_logging("WARNING")
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
    from gateledger_cli.render import render
    from gateledger.clickhouse.access import QueryError, open_querier
    from gateledger.clickhouse.client import ChdbLocked

    if sql_file is not None:
        query = sql_file.read_text()
    if not query:
        raise click.UsageError("give a QUERY or --file")
    from gateledger_cli.params import ParamError, bind_params

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
    from gateledger_cli.status import print_status

    setup_logging("ERROR")
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
        if not settings.clickhouse.is_chdb(settings.core):
            from sinks.clickhouse.access_control import apply_from_settings
            from sinks.clickhouse.settings import SinkSettings

            sink = SinkSettings()
            if sink.apply_server_ddl:
                n = apply_from_settings(client, settings.clickhouse, sink)
                click.echo(f"access control up to date ({n} statements: analyst role, tenant policies"
                           f"{', analyst login' if sink.analyst_user else ''})")
    except MigrationError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        client.close()


# --- the command groups in modules of their own -------------------------------------------------

from gateledger_cli.bench import bench  # noqa: E402
from gateledger_cli.serve import serve  # noqa: E402
from gateledger_cli.simulate import simulate  # noqa: E402

cli.add_command(serve)
cli.add_command(bench)
cli.add_command(simulate)


# --- dashboards -------------------------------------------------------------------------------

from dashboards.cli import dashboards as _dashboards  # noqa: E402  (click only; subcommands import lazily)

cli.add_command(_dashboards)


# --- budgets, costs (the money stage) -------------------------------------------------------------

from gateledger_cli.money import budgets, costs  # noqa: E402

cli.add_command(budgets)
cli.add_command(costs)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="gateledger")


if __name__ == "__main__":
    main()
