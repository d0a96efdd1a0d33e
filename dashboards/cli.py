"""``gateledger dashboards``: build, check and push the Grafana dashboards and alerting configuration.

Only click is imported here; each command imports what it needs, so ``gateledger --help`` stays fast.
"""

from __future__ import annotations

import sys
from pathlib import Path

import click


@click.group()
def dashboards() -> None:
    """Grafana dashboards and alert rules as code (dashboards/), Prometheus and Alertmanager configs."""


@dashboards.command("build")
def build_cmd() -> None:
    """Regenerate dashboards/generated/*.json and the generated Grafana alerting provisioning files."""
    from dashboards import build

    changed = build.write()
    for path in changed:
        click.echo(f"wrote {path.relative_to(build.ROOT.parent)}")
    click.echo(f"{len(build.artifacts())} generated files, {len(changed)} changed")


@dashboards.command("check")
def check_cmd() -> None:
    """Fail unless the committed generated files match the code and every dashboard passes the structural checks."""
    from dashboards import build, lint

    problems = build.check()
    problems += lint.check_all({uid: build.dashboard_json(uid) for uid in build.DASHBOARDS})
    for p in problems:
        click.echo(p, err=True)
    if problems:
        sys.exit(1)
    click.echo(f"{len(build.DASHBOARDS)} dashboards and their alerting files are up to date and sound")


@dashboards.command("push")
@click.option(
    "--url", default=None, help="Grafana base URL (default: GATELEDGER_GRAFANA_URL or http://127.0.0.1:3000)."
)
def push_cmd(url: str | None) -> None:
    """Create or update the gateledger folder, dashboards, contact point and budget alert rules in Grafana.

    Credentials: GATELEDGER_GRAFANA_TOKEN (service-account token), or GATELEDGER_GRAFANA_USERNAME and
    GATELEDGER_GRAFANA_PASSWORD. Idempotent: a second push reports everything unchanged.
    """
    from dashboards.push import push
    from dashboards.settings import GrafanaSettings

    settings = GrafanaSettings() if url is None else GrafanaSettings(url=url)
    try:
        actions = push(settings)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from None
    except Exception as exc:  # grafana-client errors carry the HTTP status and Grafana's message
        raise click.ClickException(f"push to {settings.url} failed: {exc}") from None
    for action in actions:
        click.echo(str(action))
    if any(a.outcome == "missing" for a in actions):
        click.echo(
            "warning: a datasource the dashboards use is missing (see dashboards/provisioning/datasources)",
            err=True,
        )


@dashboards.command("alertmanager-config")
@click.option("--webhook-url", required=True, help="Where every receiver sends its webhooks.")
@click.option(
    "-o",
    "--output",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write here instead of standard output.",
)
def alertmanager_config_cmd(webhook_url: str, output: Path | None) -> None:
    """Render dashboards/alertmanager/alertmanager.yml with another webhook URL."""
    from dashboards.alerting_config import render_alertmanager

    text = render_alertmanager(webhook_url)
    if output is None:
        click.echo(text, nl=False)
    else:
        output.write_text(text)
        click.echo(f"wrote {output}")
