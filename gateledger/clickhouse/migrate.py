"""Versioned schema migrations: numbered SQL files, applied once each, recorded in ``schema_migrations``.

Files are ``NNNN_name.sql`` under ``gateledger/clickhouse/migrations``. They are templates
(``string.Template``: ``$db``, ``$on_cluster``, ``${Replicated}``, ``${replica_args}``, TTLs) so the
same files serve chDB, a single server and a cluster. Every statement must be idempotent
(``IF NOT EXISTS``) so a migration interrupted half-way can simply run again.
"""

from __future__ import annotations

import hashlib
import logging
import re
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from string import Template

from clickhouse_connect.driver.client import Client

from gateledger.clickhouse.sqlsplit import split_statements
from gateledger.clock import utcnow
from gateledger.settings import ClickHouseSettings
from gateledger.tables import Table

log = logging.getLogger(__name__)

_NAME = re.compile(r"^(\d{4})_([a-z0-9_]+)\.sql$")


class MigrationError(RuntimeError):
    """A migration failed, or an applied migration's file changed since."""


@dataclass(frozen=True)
class Migration:
    version: int
    name: str
    sql: str

    @property
    def checksum(self) -> str:
        return hashlib.sha256(self.sql.encode()).hexdigest()


def migrations_dir() -> Path:
    """Where the packaged migration files live."""
    return Path(str(resources.files("gateledger.clickhouse") / "migrations"))


def load_migrations(directory: Path | None = None) -> list[Migration]:
    """All migration files, in version order; duplicate versions are an error."""
    directory = directory or migrations_dir()
    found: dict[int, Migration] = {}
    for path in sorted(directory.glob("*.sql")):
        m = _NAME.match(path.name)
        if not m:
            raise MigrationError(f"badly named migration file {path.name} (want NNNN_name.sql)")
        version = int(m.group(1))
        if version in found:
            raise MigrationError(f"two migrations with version {version}")
        found[version] = Migration(version, m.group(2), path.read_text())
    return [found[v] for v in sorted(found)]


def template_vars(ch: ClickHouseSettings) -> dict[str, str]:
    """Values substituted into migration templates."""
    clustered = bool(ch.cluster)
    return {
        "db": ch.database,
        "on_cluster": f"ON CLUSTER '{ch.cluster}'" if clustered else "",
        "Replicated": "Replicated" if clustered else "",
        # ClickHouse expands {shard}, {replica}, {database} and {table} from its own macros.
        "replica_args": "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}', " if clustered else "",
        "replica_args_only": "'/clickhouse/tables/{shard}/{database}/{table}', '{replica}'" if clustered else "",
        "ttl_raw_days": str(ch.ttl_raw_days),
        "ttl_days": str(ch.ttl_days),
        "ttl_dead_letter_days": str(ch.ttl_dead_letter_days),
        "ttl_ledger_days": str(ch.ttl_ledger_days),
        "ttl_rollup_days": str(ch.ttl_rollup_days),
    }


def render(migration: Migration, ch: ClickHouseSettings) -> list[str]:
    """The statements of a migration for this target."""
    sql = Template(migration.sql).substitute(template_vars(ch))
    statements = split_statements(sql)
    return shard(statements, ch) if ch.cluster and ch.sharded else statements


# The sink's bookkeeping is read back by whichever node a sink reaches: one replica on every node of
# the cluster (a ZooKeeper path without {shard}) instead of a Distributed table.
EVERYWHERE_TABLES = frozenset({Table.SINK_BATCHES, Table.ROLLUP_PRIOR})
# Null-engine feeds: no _local twin, an ALTER changes them as they are.
FEED_TABLES = frozenset({Table.ROLLUP_FEED, Table.LANDING_FEED, Table.DECISION_FEED})
_CREATE_TABLE = re.compile(r"^CREATE TABLE IF NOT EXISTS (\S+)\.(\w+) ")
_ALTER_TABLE = re.compile(r"^ALTER TABLE (\S+)\.(\w+) ")
_ID_COLUMN = re.compile(r"^\s*\(?\s*id\s+String\b", re.M)
_TENANT_COLUMN = re.compile(r"^\s*tenant\s+", re.M)


def sharding_key(statement: str) -> str:
    """How a table's rows are spread over shards: by id, so every version of a row meets on one
    shard (FINAL and ReplacingMergeTree collapse per shard), else by tenant."""
    if _ID_COLUMN.search(statement):
        return "cityHash64(id)"
    if _TENANT_COLUMN.search(statement):
        return "cityHash64(tenant)"
    raise MigrationError(f"no sharding key (id or tenant column) for:\n{statement[:200]}")


def shard(statements: list[str], ch: ClickHouseSettings) -> list[str]:
    """The sharded layout: each MergeTree table as ``<name>_local`` plus a Distributed ``<name>``.

    Views, materialized views and inserts keep using ``<name>``, so the migrations are written once
    for every layout. Null-engine tables (the rollup feed) exist on every node as they are.
    """
    out: list[str] = []
    for stmt in statements:
        alter = _ALTER_TABLE.match(stmt)
        if alter is not None and alter.group(2) not in EVERYWHERE_TABLES | FEED_TABLES:
            # Columns change on the shards' tables and on the Distributed table in front of them.
            db, name = alter.group(1), alter.group(2)
            out.append(stmt.replace(f"{db}.{name} ", f"{db}.{name}_local ", 1))
            if " INDEX " not in stmt:  # a Distributed table has no indexes
                out.append(stmt)
            continue
        m = _CREATE_TABLE.match(stmt)
        if m is None or "MergeTree(" not in stmt:
            out.append(stmt)
            continue
        db, name = m.group(1), m.group(2)
        if name in EVERYWHERE_TABLES:
            out.append(stmt.replace("'/clickhouse/tables/{shard}/", "'/clickhouse/tables/all/"))
            continue
        local = f"{name}_local"
        out.append(stmt.replace(f"{db}.{name} ", f"{db}.{local} ", 1))
        out.append(
            f"CREATE TABLE IF NOT EXISTS {db}.{name} ON CLUSTER '{ch.cluster}' AS {db}.{local}\n"
            f"ENGINE = Distributed('{ch.cluster}', '{ch.database}', '{local}', {sharding_key(stmt)})"
        )
    return out


def _bootstrap(client: Client, ch: ClickHouseSettings) -> None:
    v = template_vars(ch)
    if ch.cluster and ch.sharded:  # the migration record is the same on every node
        v["replica_args"] = v["replica_args"].replace("/{shard}/", "/all/")
    client.command(f"CREATE DATABASE IF NOT EXISTS `{ch.database}` {v['on_cluster']}")
    client.command(
        f"CREATE TABLE IF NOT EXISTS `{ch.database}`.schema_migrations {v['on_cluster']} ("
        " version UInt32, name String, checksum String, applied_at DateTime64(3, 'UTC'))"
        f" ENGINE = {v['Replicated']}ReplacingMergeTree({v['replica_args']}applied_at) ORDER BY version"
    )


def applied(client: Client, ch: ClickHouseSettings) -> dict[int, tuple[str, str]]:
    """version -> (name, checksum) of every migration already applied."""
    _bootstrap(client, ch)
    rows = client.query(
        f"SELECT version, argMax(name, applied_at), argMax(checksum, applied_at)"
        f" FROM `{ch.database}`.schema_migrations GROUP BY version"
    ).result_rows
    return {int(r[0]): (r[1], r[2]) for r in rows}


def migrate(client: Client, ch: ClickHouseSettings, directory: Path | None = None) -> list[Migration]:
    """Apply every pending migration in order; returns those applied now."""
    done = applied(client, ch)
    now_applied: list[Migration] = []
    for migration in load_migrations(directory):
        if migration.version in done:
            name, checksum = done[migration.version]
            if checksum != migration.checksum:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} changed after it was applied; "
                    "add a new migration instead of editing an applied one"
                )
            continue
        for stmt in render(migration, ch):
            try:
                client.command(stmt)
            except Exception as exc:
                raise MigrationError(
                    f"migration {migration.version:04d}_{migration.name} failed: {exc}\n--- statement:\n{stmt}"
                ) from exc
        client.insert(
            f"`{ch.database}`.schema_migrations",
            [[migration.version, migration.name, migration.checksum, utcnow()]],
            column_names=["version", "name", "checksum", "applied_at"],
        )
        log.info("applied migration %04d_%s", migration.version, migration.name)
        now_applied.append(migration)
    return now_applied
