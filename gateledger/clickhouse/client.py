"""The one way to reach ClickHouse: a clickhouse-connect Client for chDB (chdb:///path) or a server (http(s)://)."""

from __future__ import annotations

from urllib.parse import urlparse

import clickhouse_connect
from clickhouse_connect.driver.client import Client

from gateledger.settings import ClickHouseSettings, CoreSettings


class ChdbLocked(RuntimeError):
    """The chDB data directory is held by another process (the running stack's sink)."""


def connect(ch: ClickHouseSettings, core: CoreSettings, *, database: str | None = None) -> Client:
    """A connected client. For chDB the data directory is created; only one process may open it."""
    dsn = ch.dsn(core)
    if dsn.startswith("chdb:"):
        path = urlparse(dsn).path
        from pathlib import Path

        Path(path).mkdir(parents=True, exist_ok=True)
        try:
            return clickhouse_connect.get_client(dsn=dsn, database=database)
        except Exception as exc:  # chdb raises its own error types
            if "Cannot lock file" in str(exc) or "status" in str(exc) and "lock" in str(exc).lower():
                raise ChdbLocked(
                    f"the chDB data at {path} is in use by another process (is `gateledger up` running?)"
                ) from exc
            raise
    return clickhouse_connect.get_client(
        dsn=dsn,
        username=ch.username,
        password=ch.password.get_secret_value(),
        database=database,
        connect_timeout=ch.connect_timeout_s,
        send_receive_timeout=ch.send_receive_timeout_s,
        compress="lz4",
        settings=session_settings(ch),
    )


def session_settings(ch: ClickHouseSettings) -> dict[str, int]:
    """Query settings every server session needs for this schema layout."""
    if ch.cluster and ch.sharded:
        # An insert into a Distributed table returns only once every shard has its rows, so the sink
        # commits offsets only for data that landed (the asynchronous default would acknowledge
        # rows still queued on the receiving node).
        return {"distributed_foreground_insert": 1}
    return {}
