"""`gateledger budgets ...` and `gateledger costs ...`: budget definitions, status, and price lookups."""

from __future__ import annotations

import sys
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

import click

from gateledger import jsonutil


def _table(columns: list[str], rows: list[list[Any]], numeric: tuple[str, ...] = ()) -> str:
    """An aligned table (numbers right-aligned)."""
    from gateledger_cli.render import render
    from gateledger.clickhouse.results import QueryResult

    types = ["Decimal" if c in numeric else "String" for c in columns]
    return render(QueryResult(columns, types, rows), "table")


def _now(at: str | None) -> datetime:
    from gateledger.clock import to_utc, utcnow

    if not at:
        return utcnow()
    try:
        return to_utc(datetime.fromisoformat(at))
    except ValueError:
        raise click.BadParameter(f"not an ISO 8601 time: {at!r}", param_hint="--at") from None


def _money_settings() -> tuple[Any, Any]:
    from gateledger.money.settings import MoneySettings
    from gateledger.settings import CoreSettings

    return MoneySettings(), CoreSettings()


def _load_budget_set() -> tuple[Any, Any]:
    from gateledger.money.budgets import BudgetFileError, load_budgets

    money, core = _money_settings()
    path = money.budgets_path(core)
    try:
        return load_budgets(path), path
    except BudgetFileError as exc:
        raise click.ClickException(str(exc)) from None


@click.group()
def budgets() -> None:
    """Budget definitions (GATELEDGER_BUDGETS_FILE, default <data dir>/budgets.yaml) and their status."""


@budgets.command("add")
@click.argument("name")
@click.option("--limit", "limit_usd", required=True, help="Limit in USD, e.g. 250 or 99.50.")
@click.option("--period", type=click.Choice(["day", "week", "month", "rolling"]), required=True,
              help="Calendar day / ISO week (Monday) / month in --timezone, or a rolling window of --hours.")
@click.option("--timezone", default="UTC", show_default=True, help="IANA timezone of calendar periods.")
@click.option("--hours", type=int, default=None, help="Window length of a rolling budget.")
@click.option("--scope", "scopes", multiple=True, metavar="DIM=VALUE",
              help="tenant, team, user, client, mcp_server or model (globs allowed); repeatable.")
@click.option("--threshold", "thresholds", multiple=True, type=int,
              help="Alert threshold in percent of the limit; repeatable (default 50, 80, 100).")
@click.option("--action", type=click.Choice(["alert", "block"]), default="alert", show_default=True)
@click.option("--id", "budget_id", default=None, help="Stable id (default: the name).")
@click.option("--description", default=None)
@click.option("--no-projection", is_flag=True, help="Do not fire projected-exhaustion alerts.")
@click.option("--replace", is_flag=True, help="Replace a budget with the same name.")
def budgets_add(name: str, limit_usd: str, period: str, timezone: str, hours: int | None, scopes: tuple[str, ...],
                thresholds: tuple[int, ...], action: str, budget_id: str | None, description: str | None,
                no_projection: bool, replace: bool) -> None:
    """Add (or with --replace, change) the budget NAME in the budgets file."""
    from pydantic import ValidationError

    from gateledger.money.budgets import DIMENSIONS, Budget, BudgetFileError, save_budgets

    scope: dict[str, list[str]] = {}
    for item in scopes:
        dim, sep, value = item.partition("=")
        if not sep or dim not in DIMENSIONS or not value:
            raise click.BadParameter(f"{item!r}: want DIM=VALUE with DIM one of {', '.join(DIMENSIONS)}",
                                     param_hint="--scope")
        scope.setdefault(dim, []).append(value)
    try:
        Decimal(limit_usd)
    except InvalidOperation:
        raise click.BadParameter(f"{limit_usd!r} is not a number", param_hint="--limit") from None
    spec: dict[str, Any] = {"name": name, "limit_usd": limit_usd, "period": period, "scope": scope,
                            "action": action, "projection": not no_projection}
    if period == "rolling":
        spec["hours"] = hours
    else:
        if hours is not None:
            raise click.BadParameter("only rolling budgets take --hours", param_hint="--hours")
        spec["timezone"] = timezone
    if thresholds:
        spec["thresholds"] = list(thresholds)
    if budget_id:
        spec["id"] = budget_id
    if description:
        spec["description"] = description
    try:
        budget = Budget.model_validate(spec)
    except ValidationError as exc:
        raise click.ClickException("; ".join(e["msg"] for e in exc.errors())) from None
    current, path = _load_budget_set()
    try:
        updated = current.with_budget(budget, replace=replace)
    except BudgetFileError as exc:
        raise click.ClickException(str(exc)) from None
    save_budgets(path, updated)
    click.echo(f"{'replaced' if replace and current.get(name) else 'added'} budget {budget.name} ({budget.id}): "
               f"${budget.limit_usd} per {budget.spec.describe()}, {budget.action} at "
               f"{', '.join(f'{t}%' for t in budget.thresholds)} -> {path}")


@budgets.command("list")
@click.option("--json", "as_json", is_flag=True)
def budgets_list(as_json: bool) -> None:
    """List the defined budgets."""
    current, path = _load_budget_set()
    if as_json:
        click.echo(jsonutil.dumps_str([b.to_file_dict() | {"id": b.id} for b in current.budgets]))
        return
    if not current.budgets:
        click.echo(f"no budgets in {path} (add one with `gateledger budgets add`)")
        return
    rows = [[b.id, b.name, ", ".join(f"{k}={v}" for k, v in b.scope.labels().items()) or "(everything)",
             b.spec.describe(), format(b.limit_usd, "f"), ",".join(map(str, b.thresholds)), b.action]
            for b in current.budgets]
    click.echo(_table(["id", "name", "scope", "period", "limit_usd", "thresholds_pct", "action"], rows,
                      ("limit_usd",)), nl=False)


@budgets.command("status")
@click.option("--at", default=None, help="Report as of this time (ISO 8601; default now).")
@click.option("--json", "as_json", is_flag=True)
def budgets_status(at: str | None, as_json: bool) -> None:
    """Spend of each budget's current period, read from ClickHouse (through the running stack if any)."""
    from gateledger.clickhouse.access import QueryError, open_querier
    from gateledger.clickhouse.client import ChdbLocked
    from gateledger.money.status import budget_status
    from gateledger.settings import Settings

    current, path = _load_budget_set()
    if not current.budgets:
        click.echo(f"no budgets in {path}")
        return
    now = _now(at)
    settings = Settings()
    try:
        querier = open_querier(settings)
    except ChdbLocked as exc:
        raise click.ClickException(str(exc)) from None
    try:
        statuses = [budget_status(querier, b, settings.clickhouse.database, now) for b in current.budgets]
    except QueryError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        querier.close()
    if as_json:
        click.echo(jsonutil.dumps_str([s.to_json() for s in statuses]))
    else:
        rows = [[s.budget.name, s.period, format(s.spend, "f"), format(s.budget.limit_usd, "f"),
                 f"{(s.utilization * 100):.2f}%", ",".join(map(str, s.crossed)) or "-", s.unpriced_rows,
                 s.budget.action + (" (EXHAUSTED)" if s.spend >= s.budget.limit_usd and s.budget.action == "block"
                                    else "")]
                for s in statuses]
        click.echo(_table(["budget", "period", "spend_usd", "limit_usd", "used", "crossed_pct", "unpriced",
                           "action"], rows, ("spend_usd", "limit_usd", "used", "unpriced")), nl=False)
        if any(s.unpriced_rows for s in statuses):
            click.echo("note: unpriced cost rows count as $0 above; add their models to GATELEDGER_PRICES_FILE.")
    sys.exit(0)


@click.group()
def costs() -> None:
    """The price catalog, cost lookups and restatement after a catalog change."""


def _catalog() -> Any:
    from gateledger.money.catalog import CatalogError, load_catalog

    money, _ = _money_settings()
    try:
        return load_catalog(money.prices_file)
    except CatalogError as exc:
        raise click.ClickException(str(exc)) from None


@costs.command("catalog")
@click.option("--json", "as_json", is_flag=True)
def costs_catalog(as_json: bool) -> None:
    """Show the catalog version and its models (built-in merged with GATELEDGER_PRICES_FILE)."""
    cat = _catalog()
    rows = []
    for origin, f in (("user", cat.user), ("builtin", cat.builtin)):
        if f is None:
            continue
        for m in f.models:
            p = m.prices[-1]
            rows.append([origin, m.provider, m.model, p.effective_from.date().isoformat(), format(p.input, "f"),
                         format(p.output, "f"), "" if p.cache_read is None else format(p.cache_read, "f"),
                         "" if p.cache_write is None else format(p.cache_write, "f"), len(m.prices)])
    if as_json:
        click.echo(jsonutil.dumps_str({"version": cat.version, "user_file": str(cat.user_path or ""),
                                       "models": [dict(zip(["origin", "provider", "model", "from", "input", "output",
                                                            "cache_read", "cache_write", "price_points"], r,
                                                           strict=True)) for r in rows]}))
        return
    click.echo(f"price catalog {cat.version}" + (f" (with {cat.user_path})" if cat.user_path else ""))
    click.echo(_table(["origin", "provider", "model", "latest_from", "input", "output", "cache_read",
                       "cache_write", "prices"], rows, ("input", "output", "cache_read", "cache_write", "prices")),
               nl=False)


@costs.command("price")
@click.argument("model")
@click.option("--provider", default=None, help="Provider as reported (openai, anthropic, bedrock, vertex_ai, ...).")
@click.option("--at", default=None, help="Event time (ISO 8601; default now).")
@click.option("--input-tokens", type=int, default=0, help="Input tokens including cached ones (OTel convention).")
@click.option("--output-tokens", type=int, default=0)
@click.option("--cache-read", type=int, default=0)
@click.option("--cache-write", type=int, default=0)
def costs_price(model: str, provider: str | None, at: str | None, input_tokens: int, output_tokens: int,
                cache_read: int, cache_write: int) -> None:
    """How MODEL is priced (which catalog entry, which dated price), and what the given usage costs."""
    from gateledger.money.catalog import PriceMatch
    from gateledger.money.cost import price_usage
    from gateledger.money.usage import TokenUsage

    cat = _catalog()
    when = _now(at)
    res = cat.resolve(provider, model, when)
    if not isinstance(res, PriceMatch):
        click.echo(f"unpriced ({res.reason}): {res.detail}" + (f" [{'; '.join(res.notes)}]" if res.notes else ""))
        sys.exit(1)
    usage, note = TokenUsage.repaired(input_tokens, output_tokens, cache_read, cache_write)
    priced = price_usage(res, usage)
    rates, is_long = res.rates(usage.input_tokens)
    click.echo(f"catalog {cat.version}: {model!r} -> {priced.entry}")
    for n in (*res.notes, note):
        if n:
            click.echo(f"  note: {n}")
    click.echo(f"  rates per 1M tokens{' (long context)' if is_long else ''}: input {rates.input}, output "
               f"{rates.output}, cache read {rates.cache_read if rates.cache_read is not None else rates.input}, "
               f"cache write {rates.cache_write if rates.cache_write is not None else rates.input}")
    if usage.input_tokens or usage.output_tokens:
        click.echo(f"  cost: input {priced.input_cost} + cache read {priced.cache_read_cost} + cache write "
                   f"{priced.cache_write_cost} + output {priced.output_cost} = {priced.total} USD")


def _day_or_time(value: str, name: str) -> datetime:
    from gateledger.clock import to_utc

    try:
        return to_utc(datetime.fromisoformat(value))
    except ValueError:
        raise click.BadParameter(f"not a date or ISO 8601 time: {value!r}", param_hint=name) from None


@costs.command("restate")
@click.option("--from", "from_", required=True, help="Start (date = 00:00 UTC, or ISO 8601 time), inclusive.")
@click.option("--to", "to", default=None, help="End (date or ISO 8601 time), exclusive; default now.")
@click.option("--dry-run", is_flag=True, help="Show what would change; publish nothing.")
@click.option("--json", "as_json", is_flag=True)
def costs_restate(from_: str, to: str | None, dry_run: bool, as_json: bool) -> None:
    """Reprice the cost rows of [--from, --to) with the current catalog and publish the changed ones.

    New versions (same id, version + 1, restated=true, the new price_version) go to cost.ledger:
    ClickHouse keeps the history, and the budget stage recomputes the affected periods.
    """
    import asyncio

    from gateledger.clickhouse.access import QueryError, open_querier
    from gateledger.clickhouse.client import ChdbLocked
    from gateledger.clock import utcnow
    from gateledger.money.restate import RestatementError, restate
    from gateledger.money.restate_run import publish_costs, read_latest
    from gateledger.settings import Settings

    start = _day_or_time(from_, "--from")
    end = _day_or_time(to, "--to") if to else utcnow()
    if end <= start:
        raise click.BadParameter("--to must be after --from", param_hint="--to")
    settings = Settings()
    catalog = _catalog()
    budget_set, _ = _load_budget_set()
    try:
        querier = open_querier(settings)
    except ChdbLocked as exc:
        raise click.ClickException(str(exc)) from None
    try:
        rows = read_latest(querier, settings.clickhouse.database, start, end)
    except QueryError as exc:
        raise click.ClickException(str(exc)) from None
    finally:
        querier.close()
    try:
        result = restate(rows, catalog, budget_set, utcnow())
    except RestatementError as exc:
        raise click.ClickException(str(exc)) from None
    old = {r.id: r for r in rows}
    if not dry_run:
        asyncio.run(publish_costs(settings, result.rows))
    changes = [{"id": r.id, "time": r.time.isoformat(), "kind": r.kind.value, "model": r.model or r.tool_name,
                "old_total_usd": format(old[r.id].total_cost_usd, "f"), "new_total_usd": format(r.total_cost_usd, "f"),
                "old_price_version": old[r.id].price_version, "version": r.version, "unpriced": r.unpriced}
               for r in result.rows]
    summary = {"catalog": catalog.version, "from": start.isoformat(), "to": end.isoformat(), "rows_read": len(rows),
               "restated": len(result.rows), "unchanged": result.unchanged, "skipped": len(result.skipped),
               "affected_periods": sorted(f"{b}|{p}" for b, p in result.affected_periods),
               "published": not dry_run and bool(result.rows)}
    if as_json:
        click.echo(jsonutil.dumps_str(summary | {"changes": changes}))
        return
    click.echo(f"catalog {catalog.version}: {len(rows)} cost rows in [{start.isoformat()}, {end.isoformat()}), "
               f"{len(result.rows)} changed, {result.unchanged} unchanged, {len(result.skipped)} skipped "
               "(unpriced for lack of usage)")
    if changes:
        click.echo(_table(["time", "kind", "model", "old_usd", "new_usd", "old_price_version", "version"],
                          [[c["time"], c["kind"], c["model"], c["old_total_usd"], c["new_total_usd"],
                            c["old_price_version"], c["version"]] for c in changes], ("old_usd", "new_usd", "version")),
                   nl=False)
    if summary["affected_periods"]:
        click.echo("budget periods recomputed by the stream: " + ", ".join(summary["affected_periods"]))
    click.echo("dry run: nothing published" if dry_run else
               (f"published {len(result.rows)} new versions to cost.ledger" if result.rows else "nothing to publish"))
