"""Fixtures of the dashboard and alerting tests: a chDB database of simulated data (migrations 0001+,
rows from the contract models), and the loopback alerting harness (real Prometheus, real
Alertmanager, a local webhook receiver)."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from gateledger.clickhouse.client import connect
from gateledger.clickhouse.migrate import migrate
from gateledger.settings import ClickHouseSettings, CoreSettings
from tests.dashboards import landing, simdata
from tests.dashboards.alerting_harness import AlertingHarness


@dataclass
class SimDb:
    """A migrated database holding simulated data, and a client whose default database it is
    (like the Grafana datasource's ``defaultDatabase``)."""

    database: str
    admin: Any
    client: Any
    sim: simdata.SimData
    now: datetime


@pytest.fixture(scope="module")
def sim_db(chdb_path: Path) -> Iterator[SimDb]:
    """Simulated data for every table the dashboards read; background merges stopped so duplicates stay visible."""
    database = f"gl_dash_{uuid.uuid4().hex[:8]}"
    ch = ClickHouseSettings(url=f"chdb://{chdb_path}", database=database)
    core = CoreSettings()
    admin = connect(ch, core)
    migrate(admin, ch)
    for (table,) in admin.query(
        "SELECT name FROM system.tables WHERE database = {db:String} AND engine LIKE '%MergeTree'",
        parameters={"db": database},
    ).result_rows:
        admin.command(f"SYSTEM STOP MERGES `{database}`.`{table}`")
    now = datetime.now(UTC).replace(microsecond=0)
    sim = simdata.generate(now)
    landing.land(admin, database, sim)
    client = connect(ch, core, database=database)
    yield SimDb(database, admin, client, sim, now)
    client.close()
    admin.command(f"DROP DATABASE IF EXISTS `{database}`")
    admin.close()


@pytest.fixture
def alerting(tmp_path: Path) -> Iterator[AlertingHarness]:
    """Real Prometheus and Alertmanager on free loopback ports plus a webhook receiver; all stopped after."""
    harness = AlertingHarness(tmp_path / "alerting")
    try:
        yield harness
    finally:
        harness.stop()
