"""The analysts' user_activity view (migration 0145) in chDB: a user's events at their newest version,
whatever versions, duplicates, other users, tenants and times lie beside them."""

from __future__ import annotations

import json
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from gateledger.clickhouse.client import connect
from gateledger.clickhouse.migrate import migrate
from gateledger.settings import ClickHouseSettings, CoreSettings
from gateledger.tables import Table

DAY = "2026-11-10"
# (table, id, version, user, minute, extra columns)
ROWS: list[tuple[Table, str, int, str, int, dict[str, Any]]] = [
    (Table.MCP_CALLS, "m-newer", 1, "u", 1, {"status": "failure"}),
    (Table.MCP_CALLS, "m-newer", 2, "u", 1, {"status": "success"}),  # only this version shows
    (Table.MCP_CALLS, "m-gone", 1, "u", 2, {}),
    (Table.MCP_CALLS, "m-gone", 2, "v", 2, {}),  # the newest version is another user's
    (Table.MCP_CALLS, "m-came", 1, "v", 3, {}),
    (Table.MCP_CALLS, "m-came", 2, "u", 3, {}),  # and this one became u's
    (Table.MCP_CALLS, "m-twice", 1, "u", 4, {}),
    (Table.MCP_CALLS, "m-twice", 1, "u", 4, {}),  # delivered twice
    (Table.MCP_CALLS, "m-other", 1, "v", 5, {}),
    (Table.LLM_CALLS, "l-1", 1, "u", 6, {}),
    (Table.POLICY_DECISIONS, "p-1", 1, "u", 7, {"approved": True}),
    (Table.WEBHOOK_DECISIONS, "w-1", 1, "u", 8, {}),
    (Table.COST_LEDGER, "c-1", 1, "u", 9, {"currency": "USD"}),
    (Table.FINDINGS, "f-stands", 1, "u", 10, {}),
    (Table.FINDINGS, "f-withdrawn", 1, "u", 11, {}),
    (Table.FINDINGS, "f-withdrawn", 2, "u", 11, {"retracted": True}),
    (Table.INTERACTIONS, "i-moved", 1, "u", 12, {"status": "incomplete"}),
    (Table.INTERACTIONS, "i-moved", 2, "u", 13, {"status": "ok"}),  # its time moved: one row, the newest
    (Table.INTERACTIONS, "i-withdrawn", 1, "u", 14, {}),
    (Table.INTERACTIONS, "i-withdrawn", 2, "u", 14, {"retracted": True}),
]
WANT = {
    ("mcp_call", "m-newer", "success"), ("mcp_call", "m-came", ""), ("mcp_call", "m-twice", ""),
    ("llm_call", "l-1", ""), ("policy_decision", "p-1", "approved"), ("webhook_decision", "w-1", ""),
    ("cost", "c-1", "0 USD"), ("finding", "f-stands", ": "), ("interaction", "i-moved", "ok"),
}


@pytest.fixture(scope="module")
def client(chdb_path: Path) -> Iterator[Any]:
    """A migrated database holding ROWS, plus u's rows in another tenant and outside the range."""
    ch = ClickHouseSettings(url=f"chdb://{chdb_path}", database=f"gl_ua_{uuid.uuid4().hex[:8]}")
    admin = connect(ch, CoreSettings())
    migrate(admin, ch)
    rows = [*ROWS, (Table.MCP_CALLS, "m-elsewhere", 1, "u", 15, {"tenant": "globex"}),
            (Table.MCP_CALLS, "m-later", 1, "u", 60 * 24 * 3, {})]
    for table, id_, version, user, minute, extra in rows:
        row = {"id": id_, "version": version, "tenant": "acme", "user_id": user, "source": "s",
               "time": f"{DAY} {minute // 60 % 24:02d}:{minute % 60:02d}:00", **extra}
        if minute >= 60 * 24:
            row["time"] = "2026-11-13 00:00:00"
        admin.raw_insert(f"{ch.database}.{table}", None, json.dumps(row).encode(), fmt="JSONEachRow",
                         settings={"async_insert": 0, "input_format_skip_unknown_fields": 1})
    yield admin, ch.database
    admin.command(f"DROP DATABASE IF EXISTS `{ch.database}`")
    admin.close()


def test_a_users_activity_is_their_events_at_the_newest_version(client: Any) -> None:
    admin, db = client
    rows = admin.query(
        f"SELECT activity, id, outcome FROM {db}.user_activity(tenant = 'acme', user = 'u',"
        f" since = '{DAY}', until = '2026-11-11') ORDER BY time").result_rows
    assert len(rows) == len(WANT) and set(rows) == WANT
