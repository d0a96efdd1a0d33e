"""A loopback stand-in for the few Grafana HTTP API endpoints ``gateledger dashboards push`` calls.

This is a protocol test double for *our client code*: it checks the requests push sends (paths,
methods, bodies, authentication) and keeps enough state to prove idempotence. It is not Grafana and
proves nothing about Grafana itself. Like Grafana, it adds fields on save (ids, versions, provenance,
query defaults), so push must not mistake those for changes.

Where each rule comes from (grafana/grafana): routes ``pkg/api/api.go``; folders (get / create /
update by uid) ``pkg/api/folder.go``; datasource by uid ``pkg/api/datasources.go``; dashboards
(``POST /api/dashboards/db`` answering status, uid, version; the version bumped on every save; an
unknown folder refused) ``pkg/api/dashboard.go``; contact points (POST answers 202 with the point,
PUT answers 202 ``{"message": "contactpoint updated"}``), alert rules (POST 201; provenance ``api``;
an unknown folder refused) and rule groups ``pkg/services/ngalert/api/api_provisioning.go``; a
missing or wrong bearer token answers 401 (``pkg/middleware/auth.go``). Not modelled: permissions,
dashboard version conflicts, validation of rule queries.
"""

from __future__ import annotations

import copy
import json
import re
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse


class FakeGrafana:
    """State (folders, datasources, dashboards, contact points, rules, groups) and a request log."""

    def __init__(self, token: str, datasources: tuple[str, ...] = ()) -> None:
        self.token = token
        self.folders: dict[str, dict[str, Any]] = {}
        self.datasources = {uid: {"uid": uid, "id": i + 1} for i, uid in enumerate(datasources)}
        self.dashboards: dict[str, dict[str, Any]] = {}
        self.contact_points: dict[str, dict[str, Any]] = {}
        self.rules: dict[str, dict[str, Any]] = {}
        self.groups: dict[tuple[str, str], dict[str, Any]] = {}
        self.requests: list[tuple[str, str, Any]] = []
        self.fail_next: int | None = None  # an HTTP status to answer the next request with
        self._lock = threading.Lock()
        self._next_id = 1
        fake = self

        class Handler(BaseHTTPRequestHandler):
            def _handle(self, method: str) -> None:
                length = int(self.headers.get("Content-Length") or 0)
                body = json.loads(self.rfile.read(length)) if length else None
                with fake._lock:
                    fake.requests.append((method, self.path, body))
                    if self.headers.get("Authorization") != f"Bearer {fake.token}":
                        status, payload = 401, {"message": "Unauthorized"}
                    elif fake.fail_next is not None:
                        status, payload = fake.fail_next, {"message": "injected failure"}
                        fake.fail_next = None
                    else:
                        status, payload = fake.route(method, self.path, body)
                data = json.dumps(payload).encode()
                self.send_response(status)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                self.end_headers()
                self.wfile.write(data)

            def do_GET(self) -> None:  # noqa: N802
                self._handle("GET")

            def do_POST(self) -> None:  # noqa: N802
                self._handle("POST")

            def do_PUT(self) -> None:  # noqa: N802
                self._handle("PUT")

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        threading.Thread(target=self._server.serve_forever, name="fake-grafana", daemon=True).start()

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self._server.server_address[1]}"

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

    def writes(self) -> list[tuple[str, str, Any]]:
        """Requests that changed something."""
        return [r for r in self.requests if r[0] != "GET"]

    def _id(self) -> int:
        self._next_id += 1
        return self._next_id

    def route(self, method: str, raw_path: str, body: Any) -> tuple[int, Any]:  # noqa: C901 (a router)
        url = urlparse(raw_path)
        path, query = url.path, parse_qs(url.query)
        not_found = (404, {"message": "not found"})
        if m := re.fullmatch(r"/api/folders/([\w-]+)", path):
            uid = m.group(1)
            if method == "GET":
                return (200, self.folders[uid]) if uid in self.folders else not_found
            if method == "PUT" and uid in self.folders:
                self.folders[uid]["title"] = body["title"]
                return 200, self.folders[uid]
        if path == "/api/folders" and method == "POST":
            folder = {"uid": body["uid"], "title": body["title"], "id": self._id()}
            self.folders[body["uid"]] = folder
            return 200, folder
        if m := re.fullmatch(r"/api/datasources/uid/([\w-]+)", path):
            return (200, self.datasources[m.group(1)]) if m.group(1) in self.datasources else not_found
        if m := re.fullmatch(r"/api/dashboards/uid/([\w-]+)", path):
            d = self.dashboards.get(m.group(1))
            return (200, copy.deepcopy(d)) if d else not_found
        if path == "/api/dashboards/db" and method == "POST":
            dash = copy.deepcopy(body["dashboard"])
            if body.get("folderUid") not in self.folders:
                return 400, {"message": "folder not found"}
            old = self.dashboards.get(dash["uid"])
            dash["id"] = old["dashboard"]["id"] if old else self._id()
            dash["version"] = (old["dashboard"]["version"] + 1) if old else 1
            self.dashboards[dash["uid"]] = {
                "dashboard": dash,
                "meta": {"folderUid": body["folderUid"], "slug": "x"},
            }
            return 200, {"status": "success", "uid": dash["uid"], "version": dash["version"]}
        if path == "/api/v1/provisioning/contact-points":
            if method == "GET":
                names = query.get("name")
                return 200, [c for c in self.contact_points.values() if not names or c["name"] in names]
            if method == "POST":
                self.contact_points[body["uid"]] = {**body, "provenance": "api"}
                return 202, self.contact_points[body["uid"]]
        if (m := re.fullmatch(r"/api/v1/provisioning/contact-points/([\w-]+)", path)) and method == "PUT":
            self.contact_points[m.group(1)] = {**body, "provenance": "api"}
            return 202, {"message": "contactpoint updated"}
        if path == "/api/v1/provisioning/alert-rules" and method == "POST":
            if body.get("folderUID") not in self.folders:
                return 400, {"message": "folder does not exist"}
            self.rules[body["uid"]] = self._saved_rule(body)
            self.groups.setdefault((body["folderUID"], body["ruleGroup"]), {"interval": 60})
            return 201, self.rules[body["uid"]]
        if m := re.fullmatch(r"/api/v1/provisioning/alert-rules/([\w-]+)", path):
            uid = m.group(1)
            if method == "GET":
                return (200, copy.deepcopy(self.rules[uid])) if uid in self.rules else not_found
            if method == "PUT" and uid in self.rules:
                self.rules[uid] = self._saved_rule(body)
                return 200, self.rules[uid]
        if m := re.fullmatch(r"/api/v1/provisioning/folder/([\w-]+)/rule-groups/([\w-]+)", path):
            key = (m.group(1), m.group(2))
            if method == "GET":
                if key not in self.groups:
                    return not_found
                rules = [r for r in self.rules.values() if (r["folderUID"], r["ruleGroup"]) == key]
                return 200, {
                    "title": key[1],
                    "folderUid": key[0],
                    "interval": self.groups[key]["interval"],
                    "rules": rules,
                }
            if method == "PUT":
                self.groups[key] = {"interval": body["interval"]}
                return 200, body
        return 404, {"message": f"no route for {method} {path}"}

    def _saved_rule(self, body: dict[str, Any]) -> dict[str, Any]:
        rule = copy.deepcopy(body)
        rule.update(id=self._id(), updated="2026-11-21T00:00:00Z", provenance="api")
        for q in rule["data"]:
            q["model"].setdefault("intervalMs", 1000)
            q["model"].setdefault("maxDataPoints", 43200)
        return rule
