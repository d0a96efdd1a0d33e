"""The sink's loopback HTTP endpoint: /metrics, /healthz, /status, and /query while it owns chDB."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

from aiohttp import web
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

from gateledger import jsonutil
from gateledger.clickhouse.results import QueryRunner


def build_app(runner: QueryRunner | None, status: Callable[[], dict[str, Any]]) -> web.Application:
    """The aiohttp application; /query only exists when a runner is given (embedded chDB)."""
    app = web.Application(client_max_size=4 * 1024 * 1024)

    async def metrics(_: web.Request) -> web.Response:
        return web.Response(body=generate_latest(), headers={"Content-Type": CONTENT_TYPE_LATEST})

    async def healthz(_: web.Request) -> web.Response:
        return web.json_response({"ok": True})

    async def status_view(_: web.Request) -> web.Response:
        return web.Response(body=jsonutil.dumps(status()), content_type="application/json")

    async def query(request: web.Request) -> web.Response:
        assert runner is not None
        try:
            body = jsonutil.loads(await request.read())
            sql = body["sql"]
            params = body.get("parameters") or {}
            settings = body.get("settings") or {}
            if not isinstance(sql, str) or not isinstance(params, dict) or not isinstance(settings, dict):
                raise TypeError("sql must be a string; parameters and settings objects")
        except (ValueError, KeyError, TypeError) as exc:
            return web.json_response({"error": f"bad request: {exc}"}, status=400)
        try:
            result = await asyncio.to_thread(runner.run, sql, params, settings)
        except Exception as exc:  # any ClickHouse error goes back to the caller verbatim
            return web.json_response({"error": str(exc)}, status=422)
        return web.Response(body=jsonutil.dumps(result.to_json()), content_type="application/json")

    app.router.add_get("/metrics", metrics)
    app.router.add_get("/healthz", healthz)
    app.router.add_get("/status", status_view)
    if runner is not None:
        app.router.add_post("/query", query)
    return app
