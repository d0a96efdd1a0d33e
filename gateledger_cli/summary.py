"""The periodic summary `gateledger up` prints while it runs."""

from __future__ import annotations

from gateledger_cli.tables import TABLE_ROWS_SQL, format_counts, table_rows
from gateledger.clickhouse.access import StackQuerier
from gateledger.clock import utcnow
from gateledger.settings import ClickHouseSettings
from gateledger.tables import Table, final


async def stack_summary(sink_url: str) -> str:
    """Rows landed per table, and the newest raw event, through the sink's query endpoint."""
    db = ClickHouseSettings().database
    q = StackQuerier(sink_url)
    counts = table_rows(await q.run_async(TABLE_ROWS_SQL, {"db": db}))
    by_type = await q.run_async(
        f"SELECT type, count() FROM {db}.{Table.RAW_EVENTS} GROUP BY type ORDER BY type"
    )
    lines = [f"[{utcnow():%H:%M:%S}] rows landed per table:", format_counts(counts)]
    if by_type.rows:
        lines.append("  raw events by type: " + ", ".join(f"{t}={n}" for t, n in by_type.rows))
    money = await q.run_async(
        f"SELECT toString(sum(total_cost_usd)), countIf(NOT unpriced), countIf(unpriced), "
        f"(SELECT count() FROM {final(f'{db}.{Table.BUDGET_ALERTS}')}) FROM {final(f'{db}.{Table.COST_LEDGER}')}")
    if money.rows and (money.rows[0][1] or money.rows[0][2]):
        spend, priced, unpriced, alerts = money.rows[0]
        lines.append(f"  spend: ${spend} over {priced} priced calls ({unpriced} unpriced: add their models to "
                     f"GATELEDGER_PRICES_FILE); budget alerts: {alerts}")
    return "\n".join(lines)
