"""Table and view names are spelled once (gateledger/tables.py) and the migrations create exactly those.

(The feed column lists defined there are checked against the migrated tables in
tests/gateledger/clickhouse/test_schema.py, which migrates a database anyway.)"""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import gateledger.clickhouse
from gateledger.contracts.events import OUTPUT_MODELS, DeadLetter
from gateledger.tables import (
    LATEST,
    ROLLUPS,
    Table,
    all_names,
    latest,
    materialized_view,
)

MIGRATIONS = Path(gateledger.clickhouse.__file__).parent / "migrations"
_CREATE = re.compile(r"CREATE\s+(?:TABLE|VIEW|MATERIALIZED\s+VIEW)\s+IF\s+NOT\s+EXISTS\s+\$db\.(\w+)", re.I)


def created() -> dict[str, str]:
    """Each name a migration creates, with the migration file that creates it."""
    out: dict[str, str] = {}
    for path in sorted(MIGRATIONS.glob("*.sql")):
        for name in _CREATE.findall(path.read_text()):
            assert name not in out, f"{name} created by both {out[name]} and {path.name}"
            out[name] = path.name
    return out


def test_the_migrations_create_exactly_the_names_defined_once() -> None:
    names = created()
    assert len(names) > 30, "the pattern no longer matches the migrations' CREATE statements"
    assert set(names) - all_names() == set(), "created by a migration, missing in gateledger/tables.py"
    assert all_names() - set(names) == set(), "in gateledger/tables.py, created by no migration"


def test_every_output_model_lands_in_a_named_table() -> None:
    for model in (*OUTPUT_MODELS, DeadLetter):
        assert isinstance(model.table, Table), f"{model.__name__}.table is spelled outside gateledger/tables.py"


def test_latest_and_mv_names_refuse_what_has_none() -> None:
    assert latest(Table.MCP_CALLS) == "mcp_calls_latest"
    assert materialized_view(Table.COST_DAILY) == "cost_daily_mv"
    with pytest.raises(ValueError):
        latest(Table.SINK_BATCHES)
    with pytest.raises(ValueError):
        materialized_view(Table.MCP_CALLS)
    assert Table.SINK_BATCHES not in LATEST and Table.MCP_CALLS not in ROLLUPS

