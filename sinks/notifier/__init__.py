"""The budget-alert notifier: consumes ``budget.alerts`` and POSTs each alert to the configured webhooks."""
