"""Running queries from the CLI and tools: straight to ClickHouse, or through the running stack.

chDB lets one process hold a data directory. While ``gateledger up`` runs, its sink owns it, so
queries go to the sink's loopback /query endpoint (which binds parameters server-side with the
same clickhouse-connect Client). Otherwise the data is opened directly.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any, Protocol

import aiohttp

from gateledger import jsonutil
from gateledger.clickhouse.client import connect
from gateledger.clickhouse.query_token import read_query_token
from gateledger.clickhouse.results import QueryResult, QueryRunner
from gateledger.settings import Settings
from gateledger.stack.state import StackState, load_running


class QueryError(RuntimeError):
    """ClickHouse refused the query."""


class Querier(Protocol):
    description: str

    def run(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult: ...

    def close(self) -> None: ...


class ClientQuerier:
    """Queries through a clickhouse-connect Client of this process."""

    def __init__(self, settings: Settings) -> None:
        self._client = connect(settings.clickhouse, settings.core)
        # Unqualified table names mean gateledger's tables (as in Grafana), once the database exists.
        db = settings.clickhouse.database
        if self._client.command("EXISTS DATABASE {db:Identifier}", parameters={"db": db}) in (1, "1"):
            self._client.database = db
        self._runner = QueryRunner(self._client)
        self.description = settings.clickhouse.dsn(settings.core)

    def run(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        try:
            return self._runner.run(sql, parameters)
        except Exception as exc:
            raise QueryError(str(exc)) from exc

    def close(self) -> None:
        self._client.close()


class StackQuerier:
    """Queries through the running embedded stack's sink, with the token from its data directory."""

    def __init__(self, sink_url: str, token: str | None = None, data_dir: Path | None = None) -> None:
        self.url = sink_url.rstrip("/") + "/query"
        self.description = f"running stack ({sink_url})"
        self.token = token or read_query_token(data_dir or Settings().core.data_dir) or ""

    @classmethod
    def for_stack(cls, state: StackState) -> StackQuerier:
        """A querier of a running stack (its token read from the stack's data directory)."""
        return cls(state.sink_url, data_dir=state.data_dir)

    async def run_async(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        """The query, from inside a running event loop."""
        body = jsonutil.dumps({"sql": sql, "parameters": parameters or {}})
        async with aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=600)) as session:
            headers = {"Content-Type": "application/json", "Authorization": f"Bearer {self.token}"}
            async with session.post(self.url, data=body, headers=headers) as resp:
                payload = jsonutil.loads(await resp.read())
                if resp.status != 200:
                    raise QueryError(payload.get("error", f"HTTP {resp.status}"))
                return QueryResult.from_json(payload)

    def run(self, sql: str, parameters: dict[str, Any] | None = None) -> QueryResult:
        return asyncio.run(self.run_async(sql, parameters))

    def close(self) -> None:
        return None


def open_querier(settings: Settings | None = None) -> Querier:
    """The right way to query for this configuration and this moment."""
    settings = settings or Settings()
    if not settings.clickhouse.is_chdb(settings.core):
        return ClientQuerier(settings)
    running = load_running(settings.core.data_dir)
    if running is not None:
        return StackQuerier.for_stack(running)
    return ClientQuerier(settings)
