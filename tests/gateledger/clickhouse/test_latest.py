"""The analysts' ``<table>_latest`` views mean what gateledger.tables.newest means (migrations are immutable,
so the views keep their own SQL: FINAL, and per id on top where an event's time can move).

Versions are planted in every versioned table: superseded, delivered twice, withdrawn and restored
(where a table can withdraw), and moved in time (where a table's events can move). Each view and
newest() must keep the same ids at the same versions."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest

from gateledger.settings import Settings
from gateledger.tables import LATEST, TIME_MOVES, Table, final, latest, newest, withdrawable

# Recent: the tables' TTLs (a week for dead letters) would drop older rows.
T0 = datetime.now(UTC).replace(microsecond=0) - timedelta(hours=2)
SINCE, UNTIL = T0 - timedelta(days=1), T0 + timedelta(days=1)


def _planted(table: Table) -> list[dict[str, object]]:
    """(id, version, minutes after T0, retracted) rows that a wrong "latest" would get wrong."""
    rows = [("superseded", 1, 0, False), ("superseded", 2, 0, False), ("superseded", 3, 0, False),
            ("twice", 1, 1, False), ("twice", 1, 1, False), ("once", 1, 2, False)]
    if withdrawable(table):
        rows += [("withdrawn", 1, 3, False), ("withdrawn", 2, 3, True),
                 ("restored", 1, 4, True), ("restored", 2, 4, False)]
    if table in TIME_MOVES:
        rows += [("moved", 1, 30, False), ("moved", 2, 5, False)]
    out = []
    for id_, version, minutes, retracted in rows:
        row: dict[str, object] = {"tenant": "acme", "id": id_, "version": version,
                                  "time": (T0 + timedelta(minutes=minutes)).strftime("%Y-%m-%d %H:%M:%S.%f")}
        if withdrawable(table):
            row["retracted"] = retracted
        out.append(row)
    return out


@pytest.mark.parametrize("table", [t for t in LATEST if t != Table.RAW_EVENTS])
def test_each_latest_view_keeps_the_rows_newest_keeps(settings: Settings, ch_client, table: Table) -> None:
    db = settings.clickhouse.database
    rows = _planted(table)
    # One insert per row: separate parts, so that nothing has merged the versions away before the read.
    for row in rows:
        ch_client.raw_insert(f"{db}.{table}", None, json.dumps(row).encode(), fmt="JSONEachRow",
                             settings={"async_insert": 0, "insert_deduplicate": 0})
    args = f"tenant = 'acme', since = '{SINCE:%Y-%m-%d %H:%M:%S}', until = '{UNTIL:%Y-%m-%d %H:%M:%S}'"
    view = ch_client.query(f"SELECT id, version FROM {db}.{latest(table)}({args})").result_rows
    in_range = (f"tenant = 'acme' AND time >= '{SINCE:%Y-%m-%d %H:%M:%S}' AND time < '{UNTIL:%Y-%m-%d %H:%M:%S}'")
    want = ch_client.query(f"SELECT id, version FROM {newest(f'{db}.{table}', 'version', in_range)}").result_rows
    assert sorted(view) == sorted(want), table
    if table not in TIME_MOVES:  # FINAL, the fast way other readers take (tables.final), keeps them too
        standing = " AND NOT retracted" if withdrawable(table) else ""
        fast = ch_client.query(f"SELECT id, version FROM {final(f'{db}.{table}')} WHERE {in_range}{standing}")
        assert sorted(fast.result_rows) == sorted(want), table
    # And what both keep is right, not merely equal.
    expected = {("superseded", 3), ("twice", 1), ("once", 1)}
    if withdrawable(table):
        expected.add(("restored", 2))
    if table in TIME_MOVES:
        expected.add(("moved", 2))
    assert sorted(want) == sorted(expected)


def test_newest_refuses_a_table_without_versions_and_final_one_whose_time_moves() -> None:
    with pytest.raises(ValueError):
        newest(Table.RAW_EVENTS, "time")
    with pytest.raises(ValueError):
        newest(Table.COST_DAILY, "time")
    with pytest.raises(ValueError):
        final(f"`db`.`{Table.INTERACTIONS}`")
