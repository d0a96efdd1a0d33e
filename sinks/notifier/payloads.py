"""What a webhook receives: gateledger's generic JSON, or a Slack incoming-webhook message."""

from __future__ import annotations

import hashlib
import hmac
from typing import Any

from gateledger import jsonutil
from gateledger.contracts.events import BudgetAlert, BudgetAlertKind
from gateledger.money.amounts import display_usd
from sinks.notifier.settings import WebhookTarget


def summary(alert: BudgetAlert) -> str:
    """One line for people (amounts rounded for display only; the JSON keeps them exact)."""
    late = " (late: the spend arrived after the period ended)" if alert.late else ""
    if alert.kind == BudgetAlertKind.PROJECTED:
        projected = display_usd(alert.projected_spend_usd) if alert.projected_spend_usd is not None else "?"
        return (f"Budget {alert.budget_name} is projected to exceed its {display_usd(alert.limit_usd)} limit "
                f"before {alert.period_end:%Y-%m-%d %H:%M} UTC: {projected} at the current burn rate "
                f"({display_usd(alert.spend_usd)} spent so far){late}")
    verb = "is exhausted" if alert.threshold_pct >= 100 else f"reached {alert.threshold_pct}%"
    block = " New calls in its scope are blocked." if alert.action == "block" and alert.threshold_pct >= 100 else ""
    return (f"Budget {alert.budget_name} {verb}: {display_usd(alert.spend_usd)} of {display_usd(alert.limit_usd)} "
            f"({alert.period_key or alert.period_start.date()}){late}.{block}")


def generic(alert: BudgetAlert) -> dict[str, Any]:
    """gateledger's own JSON: the full alert (exact decimals as strings) plus a summary."""
    return {"type": "gateledger.budget_alert", "alert_id": alert.id, "summary": summary(alert),
            "alert": alert.model_dump(mode="json")}


def slack(alert: BudgetAlert) -> dict[str, Any]:
    """A Slack incoming-webhook message (``text`` is the notification fallback; ``blocks`` the layout)."""
    scope = ", ".join(f"{k}={v}" for k, v in alert.scope.items()) or "everything"
    fields = [
        ("Budget", alert.budget_name), ("Period", alert.period_key or str(alert.period_start.date())),
        ("Spent", display_usd(alert.spend_usd)), ("Limit", display_usd(alert.limit_usd)),
        ("Scope", scope), ("Action", alert.action),
    ]
    if alert.projected_spend_usd is not None:
        fields.append(("Projected", display_usd(alert.projected_spend_usd)))
    text = summary(alert)
    return {
        "text": text,
        "blocks": [
            {"type": "section", "text": {"type": "mrkdwn", "text": f":rotating_light: {text}"}},
            {"type": "section", "fields": [{"type": "mrkdwn", "text": f"*{k}*\n{v}"} for k, v in fields]},
            {"type": "context", "elements": [{"type": "mrkdwn", "text": f"alert `{alert.id}` · gateledger"}]},
        ],
    }


def render(target: WebhookTarget, alert: BudgetAlert) -> tuple[bytes, dict[str, str]]:
    """Body and headers of the POST for one target."""
    body = jsonutil.dumps(slack(alert) if target.format == "slack" else generic(alert))
    headers = {"Content-Type": "application/json", "Idempotency-Key": alert.id, "X-Gateledger-Alert-Id": alert.id,
               **target.headers}
    if target.secret is not None:
        digest = hmac.new(target.secret.get_secret_value().encode(), body, hashlib.sha256).hexdigest()
        headers["X-Gateledger-Signature-256"] = f"sha256={digest}"
    return body, headers


def wanted(target: WebhookTarget, alert: BudgetAlert) -> bool:
    """Whether a target subscribes to this alert."""
    if target.sources and "budget_alerts" not in target.sources:
        return False
    if target.budgets and alert.budget_id not in target.budgets and alert.budget_name not in target.budgets:
        return False
    return not target.kinds or alert.kind.value in target.kinds
