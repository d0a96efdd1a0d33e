"""The sink's loopback HTTP endpoint: /metrics, /healthz, /status, and /query while it owns chDB.

/metrics and /healthz are open (counters and liveness). /status and /query are default-deny: a
bearer token from the data directory (gateledger/clickhouse/query_token.py), a ``Host`` naming this
machine (a DNS-rebinding page names its own host), and for /query a JSON content type (a cross-site
form or ``text/plain`` POST cannot send one without a CORS preflight, which is never answered) and
a statement sinks/clickhouse/query_guard.py lets through. Refusals are JSON ``{"error", "reason"}``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateledger import jsonutil
from gateledger.clickhouse.results import QueryRunner
from gateledger.httpheaders import same_secret
from gateledger.memory import memory_limit_bytes
from sinks.clickhouse import telemetry
from sinks.clickhouse.query_guard import TABLE_FUNCTIONS_SQL, Refusal, check_ast, guarded_settings

LOOPBACK_NAMES = frozenset({"127.0.0.1", "localhost", "::1", "[::1]", "localhost.localdomain", "ip6-localhost"})
_READONLY_CODES = ("Code: 164", "READONLY")


def refuse(status: int, reason: str, message: str, **headers: str) -> web.Response:
    """A JSON refusal with its reason code."""
    return web.Response(body=jsonutil.dumps({"error": message, "reason": reason}), status=status,
                        content_type="application/json", headers=headers or None)


def host_allowed(host_header: str, extra: frozenset[str]) -> bool:
    """True when the Host header names this machine's loopback (or a configured name), any port."""
    host = host_header.strip().lower()
    if host.startswith("["):
        host = host[: host.find("]") + 1] if "]" in host else host
    elif host.count(":") == 1:
        host = host.split(":", 1)[0]
    return host in LOOPBACK_NAMES or host in extra


def _token_ok(expected: bytes, header: str) -> bool:
    scheme, _, token = header.partition(" ")
    return scheme.lower() == "bearer" and same_secret(token.strip(), expected)


def build_app(
    runner: QueryRunner | None,
    status: Callable[[], dict[str, Any]],
    *,
    token: str = "",
    query_timeout_s: float = 60.0,
    query_max_memory_bytes: int = 2 * 1024**3,
    allowed_hosts: frozenset[str] = frozenset(),
) -> web.Application:
    """The aiohttp application; /query only exists when a runner is given (embedded chDB).

    ``token`` empty refuses every /status and /query request (nothing to authenticate against).
    """
    expected = token.encode()

    @web.middleware
    async def guard(request: web.Request, handler: Any) -> web.StreamResponse:
        if request.path in ("/metrics", "/healthz"):
            return await handler(request)
        if not host_allowed(request.headers.get("Host", ""), allowed_hosts):
            return refuse(403, "bad_host", "Host must name this machine's loopback interface")
        if not expected or not _token_ok(expected, request.headers.get("Authorization", "")):
            return refuse(401, "unauthenticated", "missing or wrong bearer token (see the data directory's "
                          "query.token)", **{"WWW-Authenticate": "Bearer"})
        return await handler(request)

    app = web.Application(client_max_size=4 * 1024 * 1024, middlewares=[guard])
    limits = guarded_settings(query_timeout_s, query_max_memory_bytes)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def status_view(_: web.Request) -> web.Response:
        return web.Response(body=jsonutil.dumps(status()), content_type="application/json")

    table_functions: list[frozenset[str]] = []

    def run_guarded(sql: str, params: dict[str, Any]) -> Any:
        assert runner is not None
        if not table_functions:
            rows = runner.run(TABLE_FUNCTIONS_SQL, None, limits).rows
            table_functions.append(frozenset(str(r[0]).lower() for r in rows))
        # ClickHouse parses the statement (parsing only: no limits needed, and none to show up in the
        # tree as the caller's); the guard reads its syntax tree.
        ast = runner.run("EXPLAIN AST " + sql, params)
        check_ast([str(r[0]) for r in ast.rows], table_functions[0])
        return runner.run(sql, params, limits)

    async def query(request: web.Request) -> web.Response:
        if request.content_type != "application/json":
            return refuse(415, "content_type", "Content-Type must be application/json")
        try:
            body = jsonutil.loads(await request.read())
            sql = body["sql"]
            params = body.get("parameters") or {}
            if not isinstance(sql, str) or not isinstance(params, dict):
                raise TypeError("sql must be a string and parameters an object")
        except (ValueError, KeyError, TypeError) as exc:
            return refuse(400, "bad_request", f"bad request: {exc}")
        if body.get("settings"):
            return refuse(403, "settings", "caller settings are not accepted (the endpoint's limits are fixed)")
        try:
            result = await asyncio.to_thread(run_guarded, sql, params)
        except Refusal as exc:
            return refuse(403, exc.reason, str(exc))
        except Exception as exc:  # a ClickHouse error goes back to the caller verbatim
            if any(code in str(exc) for code in _READONLY_CODES):
                return refuse(403, "readonly", str(exc))
            return web.json_response({"error": str(exc), "reason": "clickhouse"}, status=422)
        return web.Response(body=jsonutil.dumps(result.to_json()), content_type="application/json")

    telemetry.MEMORY_LIMIT.set(memory_limit_bytes())
    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status_view)
    if runner is not None:
        app.router.add_post("/query", query)
    return app
