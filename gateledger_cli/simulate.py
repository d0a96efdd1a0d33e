"""`gateledger simulate`: the traffic simulator's command (producers/simulator/, imported when run)."""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

import click

from gateledger_cli.logs import setup_logging


@click.command()
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
    setup_logging("WARNING")
    sys.exit(asyncio.run(run_simulation(
        target, rate=rate, seed=seed, count=count, tenants=tenants, start=start, faults=faults, out=out_dir,
        truth_path=truth_path, tokens=per_tenant, token=common, webhook_secret=webhook_secret,
    )))
