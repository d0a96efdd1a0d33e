"""The blocking emitter: standard library only (urllib + a background thread), for any Python gateway."""

from __future__ import annotations

import json
import logging
import random
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from typing import Any

from producers.emitter.events import BATCH_CONTENT_TYPE, Attempts, EmitError, RetryPolicy

log = logging.getLogger(__name__)

ErrorHandler = Callable[[EmitError], None]


def _log_error(err: EmitError) -> None:
    log.error("gateledger emitter: %s (%d event(s))", err, len(err.events))


def endpoint_url(url: str) -> str:
    """The CloudEvents endpoint for a gateledger base URL (or the endpoint itself)."""
    url = url.rstrip("/")
    return url if url.endswith("/v1/cloudevents") else url + "/v1/cloudevents"


class Emitter:
    """Buffers events and POSTs them in batches; retries while gateledger answers 503 (Kafka down).

    ``emit`` never blocks on the network; it blocks only when ``max_buffer`` events are waiting
    (back-pressure instead of unbounded memory). A background thread sends a batch every
    ``flush_interval_s`` or as soon as ``batch_size`` events are waiting. ``flush()`` sends
    everything buffered so far and raises EmitError for events that could not be delivered;
    failures in the background go to ``on_error`` (default: logged). Use as a context manager.
    """

    def __init__(
        self,
        url: str,
        *,
        token: str | None = None,
        batch_size: int = 200,
        flush_interval_s: float = 1.0,
        max_buffer: int = 20_000,
        timeout_s: float = 10.0,
        retry: RetryPolicy = RetryPolicy(),
        on_error: ErrorHandler = _log_error,
    ) -> None:
        self.url = endpoint_url(url)
        self.token = token
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_buffer = max_buffer
        self.timeout_s = timeout_s
        self.retry = retry
        self.on_error = on_error
        self.sent = 0
        self._buf: list[dict[str, Any]] = []
        self._cond = threading.Condition()
        self._send_lock = threading.Lock()  # batches leave in order, from one sender at a time
        self._closed = False
        self._rng = random.Random()
        self._thread = threading.Thread(target=self._loop, name="gateledger-emitter", daemon=True)
        self._thread.start()

    def __enter__(self) -> Emitter:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def emit(self, event: dict[str, Any]) -> None:
        """Queue one event (see ``producers.emitter.make_event``)."""
        with self._cond:
            if self._closed:
                raise RuntimeError("emitter is closed")
            while len(self._buf) >= self.max_buffer:
                self._cond.wait()
            self._buf.append(event)
            if len(self._buf) >= self.batch_size:
                self._cond.notify_all()

    def flush(self) -> None:
        """Send everything queued so far; EmitError lists the events that were not delivered."""
        failed: list[EmitError] = []
        with self._send_lock:
            while batch := self._take():
                failed.extend(self._send(batch))
        if failed:
            events = [e for f in failed for e in f.events]
            raise EmitError(f"{len(events)} event(s) not delivered: {failed[0]}", events, failed[0].status,
                            [f.details for f in failed])

    def close(self) -> None:
        """Send what is queued (failures to ``on_error``) and stop the background thread."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        self._thread.join()
        # Failures at close go to on_error, like the background thread's: closing never raises.
        with self._send_lock:
            while batch := self._take():
                for err in self._send(batch):
                    self.on_error(err)

    # -- internals ----------------------------------------------------------------------------

    def _take(self) -> list[dict[str, Any]]:
        with self._cond:
            batch, self._buf = self._buf[: self.batch_size], self._buf[self.batch_size :]
            self._cond.notify_all()
            return batch

    def _loop(self) -> None:
        while True:
            deadline = time.monotonic() + self.flush_interval_s
            with self._cond:
                # Woken early only by a full batch or close (not by every take's notify).
                while not self._closed and len(self._buf) < self.batch_size:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    self._cond.wait(remaining)
                if self._closed:
                    return
            with self._send_lock:
                while batch := self._take():
                    for err in self._send(batch):
                        self.on_error(err)
                    if len(self._buf) < self.batch_size:
                        break

    def _post(self, batch: list[dict[str, Any]]) -> tuple[int, Any, str | None]:
        headers = {"Content-Type": BATCH_CONTENT_TYPE}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        req = urllib.request.Request(self.url, data=json.dumps(batch).encode(), headers=headers, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                return resp.status, json.loads(resp.read() or b"null"), None
        except urllib.error.HTTPError as exc:
            raw = exc.read()
            try:
                payload = json.loads(raw) if raw else None
            except ValueError:
                payload = raw.decode("utf-8", "replace")
            return exc.code, payload, exc.headers.get("Retry-After")

    def _send(self, batch: list[dict[str, Any]]) -> list[EmitError]:
        """Deliver one batch (retrying, splitting on 413); the errors for what could not be."""
        attempts = Attempts(self.retry, self._rng)
        while True:
            try:
                status, payload, retry_after = self._post(batch)
            except (urllib.error.URLError, OSError) as exc:
                status, payload, retry_after = 0, str(exc), None
            step = attempts.after(status, payload, retry_after, batch)
            if step.split:
                half = len(batch) // 2
                return self._send(batch[:half]) + self._send(batch[half:])
            if step.errors is not None:
                self.sent += step.sent
                return step.errors
            time.sleep(step.wait)
