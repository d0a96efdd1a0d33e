"""Loopback alerting harness: real Prometheus and real Alertmanager (Debian's packages) on free
127.0.0.1 ports, short scrape / evaluation / grouping intervals, and a local webhook receiver.

Alertmanager runs the committed configuration (dashboards/alertmanager/alertmanager.yml) rendered
with the receiver's URL and short timings, so a test proves the real routing tree. Prometheus gets
a test configuration scraping whatever the test names, with the rule files it names (the committed
rules can be loaded alongside). Everything is stopped by ``stop()``: the processes started here, by
their process group, and the receiver.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import threading
import time
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import yaml

from dashboards.alerting_config import render_alertmanager
from gateledger.net import free_port

PROMETHEUS = "prometheus"
ALERTMANAGER = "prometheus-alertmanager"  # Debian's name for the alertmanager binary


def binaries_available() -> bool:
    """True when the Debian packages are installed (scripts/install-system-deps.sh)."""
    return all(shutil.which(b) for b in (PROMETHEUS, ALERTMANAGER, "promtool", "amtool"))


class WebhookReceiver:
    """A loopback HTTP server that records every Alertmanager webhook posted to it."""

    def __init__(self) -> None:
        self.payloads: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                try:
                    payload = json.loads(body)
                except ValueError:
                    self.send_response(400)
                    self.end_headers()
                    return
                payload["_received_at"] = time.monotonic()
                payload["_path"] = self.path
                with receiver._cond:
                    receiver.payloads.append(payload)
                    receiver._cond.notify_all()
                self.send_response(200)
                self.end_headers()

            def log_message(self, *args: Any) -> None:
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._thread = threading.Thread(
            target=self._server.serve_forever, name="webhook-receiver", daemon=True
        )
        self._thread.start()

    @property
    def url(self) -> str:
        """Where Alertmanager should post."""
        return f"http://127.0.0.1:{self._server.server_address[1]}/alertmanager"

    def notifications(self, alertname: str | None = None, status: str | None = None) -> list[dict[str, Any]]:
        """Payloads received so far, optionally those carrying an alert of that name and status."""
        with self._cond:
            found = list(self.payloads)
        return [p for p in found if _matches(p, alertname, status)]

    def wait_for(self, alertname: str, status: str, timeout_s: float = 30.0) -> dict[str, Any]:
        """The first payload with an alert of that name and status; TimeoutError if none comes in time."""
        deadline = time.monotonic() + timeout_s
        with self._cond:
            while True:
                for p in self.payloads:
                    if _matches(p, alertname, status):
                        return p
                left = deadline - time.monotonic()
                if left <= 0:
                    raise TimeoutError(
                        f"no {status} {alertname} notification within {timeout_s}s; got {self.payloads}"
                    )
                self._cond.wait(left)

    def stop(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()


def _matches(payload: Mapping[str, Any], alertname: str | None, status: str | None) -> bool:
    for alert in payload.get("alerts", []):
        if alertname and alert.get("labels", {}).get("alertname") != alertname:
            continue
        if status and alert.get("status") != status:
            continue
        return True
    return False


def _get_json(url: str, timeout_s: float = 5.0) -> Any:
    with urllib.request.urlopen(url, timeout=timeout_s) as resp:  # noqa: S310 (loopback URL we built)
        return json.loads(resp.read())


def _wait_ready(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 20.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"{proc.args[0]} exited with {proc.returncode}: {log.read_text()[-2000:]}")
        try:
            with urllib.request.urlopen(url, timeout=1) as resp:  # noqa: S310
                if resp.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.05)
    raise TimeoutError(f"{url} not ready after {timeout_s}s: {log.read_text()[-2000:]}")


class AlertingHarness:
    """Prometheus → Alertmanager → webhook receiver, all on loopback, started by ``start``."""

    def __init__(self, workdir: Path) -> None:
        self.workdir = workdir
        workdir.mkdir(parents=True, exist_ok=True)
        self.receiver = WebhookReceiver()
        self._procs: list[subprocess.Popen[bytes]] = []
        self.prometheus_url = ""
        self.alertmanager_url = ""

    def _spawn(self, args: Sequence[str], log: Path) -> subprocess.Popen[bytes]:
        out = open(log, "wb")  # noqa: SIM115 (handed to the child)
        proc = subprocess.Popen(
            list(args), stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=self.workdir
        )
        out.close()
        self._procs.append(proc)
        return proc

    def start(
        self,
        *,
        scrape_targets: Mapping[str, Sequence[str]],
        rule_files: Sequence[Path],
        interval: str = "1s",
        group_wait: str = "1s",
        group_interval: str = "1s",
        repeat_interval: str = "1h",
        webhook_url: str | None = None,
    ) -> None:
        """Start Alertmanager (committed routing, local receiver) and then Prometheus (test config)."""
        self.start_alertmanager(
            group_wait=group_wait, group_interval=group_interval, repeat_interval=repeat_interval,
            webhook_url=webhook_url,
        )
        self.start_prometheus(scrape_targets=scrape_targets, rule_files=rule_files, interval=interval)

    def start_alertmanager(
        self, *, group_wait: str = "1s", group_interval: str = "1s", repeat_interval: str = "1h",
        webhook_url: str | None = None,
    ) -> None:
        """Alertmanager with the committed configuration, sending to the local receiver (or to
        ``webhook_url``, e.g. gateledger's notifier relaying to that receiver)."""
        am_port = free_port()
        am_config = self.workdir / "alertmanager.yml"
        am_config.write_text(
            render_alertmanager(
                webhook_url or self.receiver.url,
                group_wait=group_wait,
                group_interval=group_interval,
                repeat_interval=repeat_interval,
            )
        )
        am_log = self.workdir / "alertmanager.log"
        am = self._spawn(
            [
                ALERTMANAGER,
                f"--config.file={am_config}",
                f"--storage.path={self.workdir / 'am-data'}",
                f"--web.listen-address=127.0.0.1:{am_port}",
                "--cluster.listen-address=",
            ],
            am_log,
        )
        self.alertmanager_url = f"http://127.0.0.1:{am_port}"
        _wait_ready(f"{self.alertmanager_url}/-/ready", am, am_log)

    def start_prometheus(
        self, *, scrape_targets: Mapping[str, Sequence[str]], rule_files: Sequence[Path], interval: str = "1s"
    ) -> None:
        """Prometheus scraping ``scrape_targets`` (job -> host:port list), alerting to our Alertmanager."""
        am_host = urllib.parse.urlparse(self.alertmanager_url).netloc
        prom_port = free_port()
        prom_config = self.workdir / "prometheus.yml"
        prom_config.write_text(
            yaml.safe_dump(
                {
                    "global": {
                        "scrape_interval": interval,
                        "evaluation_interval": interval,
                        "scrape_timeout": interval,
                    },
                    "rule_files": [str(p) for p in rule_files],
                    "alerting": {"alertmanagers": [{"static_configs": [{"targets": [am_host]}]}]},
                    "scrape_configs": [
                        {"job_name": job, "static_configs": [{"targets": list(targets)}]}
                        for job, targets in scrape_targets.items()
                    ],
                },
                sort_keys=False,
            )
        )
        prom_log = self.workdir / "prometheus.log"
        prom = self._spawn(
            [
                PROMETHEUS,
                f"--config.file={prom_config}",
                f"--storage.tsdb.path={self.workdir / 'prom-data'}",
                f"--web.listen-address=127.0.0.1:{prom_port}",
            ],
            prom_log,
        )
        self.prometheus_url = f"http://127.0.0.1:{prom_port}"
        _wait_ready(f"{self.prometheus_url}/-/ready", prom, prom_log)

    def post_alerts(self, alerts: Sequence[Mapping[str, Any]]) -> None:
        """Send alerts straight to Alertmanager (its v2 API), as Prometheus would."""
        req = urllib.request.Request(
            f"{self.alertmanager_url}/api/v2/alerts",
            data=json.dumps(list(alerts)).encode(),
            method="POST",
            headers={"Content-Type": "application/json"},
        )
        with urllib.request.urlopen(req, timeout=5) as resp:  # noqa: S310 (loopback)
            if resp.status != 200:
                raise RuntimeError(f"Alertmanager refused the alerts: {resp.status}")

    def alertmanager_alerts(self) -> list[dict[str, Any]]:
        """Alertmanager's alerts with their status (``/api/v2/alerts``: active, suppressed, inhibitedBy)."""
        return _get_json(f"{self.alertmanager_url}/api/v2/alerts")

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant PromQL query's result vector."""
        url = f"{self.prometheus_url}/api/v1/query?" + urllib.parse.urlencode({"query": expr})
        data = _get_json(url)
        if data.get("status") != "success":
            raise RuntimeError(f"query {expr!r} failed: {data}")
        return data["data"]["result"]

    def wait_query(
        self, expr: str, predicate: Callable[[list[dict[str, Any]]], bool] = bool, timeout_s: float = 20.0
    ) -> list[dict[str, Any]]:
        """Poll a query until its result satisfies ``predicate``."""
        deadline = time.monotonic() + timeout_s
        result: list[dict[str, Any]] = []
        while time.monotonic() < deadline:
            result = self.query(expr)
            if predicate(result):
                return result
            time.sleep(0.2)
        raise TimeoutError(f"{expr!r} did not become true within {timeout_s}s (last: {result})")

    def rule_groups(self) -> list[dict[str, Any]]:
        """Rule groups Prometheus loaded (``/api/v1/rules``)."""
        return _get_json(f"{self.prometheus_url}/api/v1/rules")["data"]["groups"]

    def stop(self) -> None:
        """Stop Prometheus, Alertmanager (by the process groups started here) and the receiver."""
        for proc in reversed(self._procs):
            if proc.poll() is None:
                try:
                    os.killpg(proc.pid, signal.SIGTERM)
                    proc.wait(10)
                except ProcessLookupError:
                    pass
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()
        self._procs.clear()
        self.receiver.stop()
