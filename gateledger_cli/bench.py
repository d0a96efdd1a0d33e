"""`gateledger bench ...`: the benchmark scenarios (code under benchmarks/, imported when run)."""

from __future__ import annotations

from pathlib import Path

import click

from gateledger_cli.logs import setup_logging


@click.group()
def bench() -> None:
    """Benchmarks: each scenario prints tables and writes JSON, every figure also as a ratio to a
    baseline (raw Kafka -> chDB, no processing) measured in the same run. See docs/benchmarks.md."""


def _bench_scenarios(names: list[str], quick: bool, json_path: Path | None, write_docs: bool) -> None:
    import json

    from benchmarks.common import REPO
    from benchmarks.run import run_scenarios
    from benchmarks.run import write_docs as write

    setup_logging("WARNING")
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

    setup_logging("WARNING")
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

    setup_logging("WARNING")
    click.echo(json.dumps(run(interactions, runs, logic_only=logic_only), indent=2))


@bench.command("money")
@click.option("--calls", "calls_n", type=int, default=20000, show_default=True, help="LLM and tool calls per run.")
@click.option("--runs", type=int, default=3, show_default=True, help="Runs; the median is reported.")
@click.option("--logic-only", is_flag=True, help="Only the in-process stage logic (no broker, no faust).")
def bench_money(calls_n: int, runs: int, logic_only: bool) -> None:
    """Throughput of the cost and budget stages (calls/s, contributions/s on one worker)."""
    import json

    from benchmarks.money import run

    setup_logging("WARNING")
    click.echo(json.dumps(run(calls_n, runs, logic_only=logic_only), indent=2))
