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
    settings = Settings()
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


@serve.command("notifier")
def serve_notifier() -> None:
    """The budget-alert notifier (budget.alerts -> webhooks, generic JSON or Slack)."""
    from sinks.notifier.main import main as notifier_main

    _setup_logging()
    notifier_main()


@serve.command("poller")
def serve_poller() -> None:
    """The Obot audit API poller (GATELEDGER_OBOT_URL, GATELEDGER_OBOT_TOKEN; see docs/ingest.md)."""
    from producers.obot.poller import main as poller_main

    _setup_logging()
    poller_main()


@serve.command("axonflow-poller")
def serve_axonflow_poller() -> None:
    """The AxonFlow audit poller (GATELEDGER_AXONFLOW_URL, _CLIENT_ID, _CLIENT_SECRET; see docs/ingest.md)."""
    from producers.axonflow.poller import main as axonflow_poller_main

    _setup_logging()
    axonflow_poller_main()


@serve.command("processors")
def serve_processors() -> None:
    """The faust stream-processing worker."""
    from stream_processors.main import main as processors_main

    _setup_logging()
    processors_main()


# --- bench ------------------------------------------------------------------------------------


@cli.group()
def bench() -> None:
    """Benchmarks: each scenario prints tables and writes JSON, every figure also as a ratio to a
    baseline (raw Kafka -> chDB, no processing) measured in the same run. See docs/benchmarks.md."""


def _bench_scenarios(names: list[str], quick: bool, json_path: Path | None, write_docs: bool) -> None:
    import json

    from benchmarks.common import REPO
    from benchmarks.run import run_scenarios
    from benchmarks.run import write_docs as write

    _setup_logging("WARNING")
    results = run_scenarios(names, quick=quick, echo=click.echo)
    if json_path is not None:
        json_path.write_text(json.dumps(results, indent=1, default=str))
        click.echo(f"\nresults: {json_path}")
    if write_docs:
        write(results, REPO / "docs" / "benchmarks.md")
        click.echo("wrote docs/benchmarks.md and docs/benchmarks.json")


_BENCH_HELP = {
    "baseline": "Raw aiokafka produce -> consume -> batched chDB insert: the limit every figure is divided by.",
    "stages": "Each stage alone: ingest (single and batched POSTs), processors, sink.",
    "end-to-end": "Simulator -> ingest -> Kafka -> processors -> sink -> ClickHouse: max rate, delays at 25/50/90 %.",
    "queries": "Every dashboard panel and documented analyst query over 10M simulated events (median ms).",
    "memory": "Peak RSS of each service at 90 % of the maximum rate; state size per open interaction.",
}


def _bench_command(name: str) -> None:
    @bench.command(name, help=_BENCH_HELP[name])
    @click.option("--quick", is_flag=True, help="Small sizes, one run: to try the command out.")
    @click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
                  help="Also write the results (with the baseline and ratios) to this file.")
    def command(quick: bool, json_path: Path | None) -> None:
        _bench_scenarios([name], quick, json_path, False)


for _name in _BENCH_HELP:
    _bench_command(_name)


@bench.command("all")
@click.option("--quick", is_flag=True, help="Small sizes, one run: to try the command out.")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results to this file.")
@click.option("--write-docs", is_flag=True, help="Rewrite docs/benchmarks.md and docs/benchmarks.json.")
def bench_all(quick: bool, json_path: Path | None, write_docs: bool) -> None:
    """Every scenario in one run (the baseline first); --write-docs regenerates docs/benchmarks.md."""
    _bench_scenarios(["stages", "end-to-end", "memory", "queries"], quick, json_path, write_docs)


@bench.command("soak")
@click.option("--minutes", type=float, default=30.0, show_default=True, help="How long the steady load runs.")
@click.option("--rate", type=float, default=300.0, show_default=True, help="Raw events/s sent to the stack.")
@click.option("--every", "every_s", type=float, default=5.0, show_default=True, help="Seconds between samples.")
@click.option("--warmup", "warmup_min", type=float, default=5.0, show_default=True,
              help="Minutes left out of the growth fit.")
@click.option("--retention-s", type=float, default=None,
              help="Shorten the processors' retention and dedup windows (seconds) to reach the plateau sooner.")
@click.option("--broker-recycle-mib", type=float, default=None,
              help="Recycle the embedded broker past this RSS (GATELEDGER_STACK_BROKER_RECYCLE_RSS_MIB).")
@click.option("--json", "json_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Also write the results (every sample) to this file.")
@click.option("--write-docs", is_flag=True, help="Write docs/benchmarks-soak.md, .json and .png.")
def bench_soak(minutes: float, rate: float, every_s: float, warmup_min: float, retention_s: float | None,
               broker_recycle_mib: float | None, json_path: Path | None, write_docs: bool) -> None:
    """The whole stack at a steady rate: RSS and CPU per service, fitted growth, 7-day extrapolation."""
    import json

    from benchmarks.common import REPO
    from benchmarks.run import scenario_subprocess, tables, write_soak_docs

    _setup_logging("WARNING")
    png = REPO / "docs" / "benchmarks-soak.png" if write_docs else None
    params = {"minutes": minutes, "rate": rate, "every_s": every_s, "warmup_min": warmup_min,
              "retention_s": retention_s, "png": str(png) if png else None,
              "broker_recycle_mib": broker_recycle_mib}
    click.echo(f"soak: {rate:g} raw events/s for {minutes:g} min, a sample every {every_s:g} s ...")
    result = scenario_subprocess("soak", params)
    for t in tables({"soak": result}):
        click.echo("\n" + t)
    click.echo(f"\nwhole stack extrapolated to 7 days: {result['stack_extrapolated_7d_mib']} MiB")
    if json_path is not None:
        json_path.write_text(json.dumps(result, indent=1, default=str))
    if write_docs:
        write_soak_docs(result, REPO / "docs" / "benchmarks-soak.md")
        click.echo("wrote docs/benchmarks-soak.md, .json and .png")


@bench.command("processors")
@click.option("--interactions", type=int, default=5000, show_default=True,
              help="Synthetic interactions per run (about 4.7 raw events each).")
@click.option("--runs", type=int, default=3, show_default=True, help="Runs; the median is reported.")
@click.option("--logic-only", is_flag=True, help="Only the in-process stage logic (no broker, no faust).")
def bench_processors(interactions: int, runs: int, logic_only: bool) -> None:
    """Throughput of the stream processors alone, as JSON (also part of `bench stages`)."""
    import json

    from benchmarks.processors import run

    _setup_logging("WARNING")
    click.echo(json.dumps(run(interactions, runs, logic_only=logic_only), indent=2))


@bench.command("money")
@click.option("--calls", "calls_n", type=int, default=20000, show_default=True, help="LLM and tool calls per run.")
@click.option("--runs", type=int, default=3, show_default=True, help="Runs; the median is reported.")
@click.option("--logic-only", is_flag=True, help="Only the in-process stage logic (no broker, no faust).")
def bench_money(calls_n: int, runs: int, logic_only: bool) -> None:
    """Throughput of the cost and budget stages (calls/s, contributions/s on one worker)."""
    import json

    from benchmarks.money import run

    _setup_logging("WARNING")
    click.echo(json.dumps(run(calls_n, runs, logic_only=logic_only), indent=2))


# --- simulate ---------------------------------------------------------------------------------


@cli.command()
@click.option("--target", default=None, help="Ingest service base URL, e.g. http://127.0.0.1:8480 (real-time delivery).")
@click.option("--out", "out_dir", type=click.Path(file_okay=False, path_type=Path), default=None,
              help="Write <dir>/<tenant>/<format>.jsonl and truth.json instead of sending (needs --count).")
@click.option("--rate", type=float, default=50.0, show_default=True, help="Interactions per second (0: as fast as possible).")
@click.option("--seed", type=int, default=42, show_default=True, help="Random seed: the same seed gives the same traffic.")
@click.option("--start", "start_time", default=None, metavar="RFC3339",
              help="Simulated time of the first interaction (default: now). With --seed: byte-identical output.")
@click.option("--count", type=int, default=None, help="Stop after this many interactions (default: forever).")
@click.option("--tenants", type=int, default=3, show_default=True, help="Number of tenants.")
@click.option("--chaos", is_flag=True, help="Turn on a mix of every fault (the options below override it).")
@click.option("--duplicates", type=float, default=None, help="Fault: probability a record is delivered twice.")
@click.option("--out-of-order", "out_of_order", type=float, default=None, help="Fault: probability a record is held back up to a minute.")
@click.option("--late", type=float, default=None, help="Fault: probability an interaction's last record arrives --late-hours late.")
@click.option("--late-hours", type=float, default=None, help="Fault: how late a late record is (default 3).")
@click.option("--malformed", type=float, default=None, help="Fault: probability of an extra malformed record per interaction.")
@click.option("--missing-audits", type=float, default=None, help="Fault: probability an approved pre-check is never audited.")
@click.option("--orphan-audits", type=float, default=None, help="Fault: probability of an audit for an unknown context id.")
@click.option("--bypass", type=float, default=None, help="Fault: probability a blocked pre-check is followed by an audit anyway.")
@click.option("--token", "tokens", multiple=True, metavar="[TENANT=]TOKEN", envvar="GATELEDGER_SIMULATE_TOKENS",
              help="Bearer token for the ingest endpoints, for all tenants or one (repeatable).")
@click.option("--webhook-secret", envvar="GATELEDGER_INGEST_WEBHOOK_SECRET", default=None,
              help="Sign webhook-filter deliveries with this secret (X-Obot-Signature-256).")
@click.option("--truth", "truth_path", type=click.Path(dir_okay=False, path_type=Path), default=None,
              help="Target mode: write the ground truth here when done.")
def simulate(target: str | None, out_dir: Path | None, rate: float, seed: int, start_time: str | None,
             count: int | None, tenants: int, chaos: bool, duplicates: float | None, out_of_order: float | None,
             late: float | None, late_hours: float | None, malformed: float | None, missing_audits: float | None,
             orphan_audits: float | None, bypass: float | None, tokens: tuple[str, ...], webhook_secret: str | None,
             truth_path: Path | None) -> None:
    """Realistic multi-tenant traffic in the upstream wire formats, to an ingest service or to files.

    Target mode POSTs through the upstream-compatible endpoints (Obot shim, signed webhook filter,
    AxonFlow exchanges, Obot LLM logs, CloudEvents) at --rate, retrying while gateledger answers
    503. File mode (--out) writes per-tenant, per-format JSONL for `gateledger ingest`, plus the
    ground truth.
    """
    import dataclasses

    from gateledger.jsonutil import parse_time
    from producers.simulator.run import run_simulation
    from producers.simulator.traffic import Faults

    if (target is None) == (out_dir is None):
        raise click.UsageError("give exactly one of --target or --out")
    if out_dir is not None and count is None:
        raise click.UsageError("--out needs --count")
    faults = Faults.chaos() if chaos else Faults()
    chosen = {"duplicates": duplicates, "out_of_order": out_of_order, "late": late, "late_hours": late_hours,
              "malformed": malformed, "missing_audits": missing_audits, "orphan_audits": orphan_audits,
              "bypass": bypass}
    faults = dataclasses.replace(faults, **{k: v for k, v in chosen.items() if v is not None})
    try:
        start = parse_time(start_time) if start_time else None
    except ValueError:
        raise click.UsageError(f"bad --start {start_time!r}: want RFC 3339, e.g. 2026-11-20T10:00:00Z") from None
    if start is not None and start.tzinfo is None:
        raise click.UsageError("--start needs a timezone (e.g. a trailing Z)")
    per_tenant: dict[str, str] = {}
    common: str | None = None
    for t in tokens:
        name, sep, value = t.partition("=")
        if sep:
            per_tenant[name] = value
        else:
            common = t
    _setup_logging("WARNING")
    sys.exit(asyncio.run(run_simulation(
        target, rate=rate, seed=seed, count=count, tenants=tenants, start=start, faults=faults, out=out_dir,
        truth_path=truth_path, tokens=per_tenant, token=common, webhook_secret=webhook_secret,
    )))


# --- dashboards -------------------------------------------------------------------------------

from dashboards.cli import dashboards as _dashboards  # noqa: E402  (click only; subcommands import lazily)

cli.add_command(_dashboards)


# --- budgets, costs (the money stage) -------------------------------------------------------------

from gateledger.cli.money import budgets, costs  # noqa: E402

cli.add_command(budgets)
cli.add_command(costs)


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="gateledger")


if __name__ == "__main__":
    main()
