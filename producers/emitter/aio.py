"""The asyncio emitter (aiohttp), for gateways that run an event loop."""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Callable
from typing import Any

import aiohttp

from gateledger import jsonutil
from producers.emitter.events import BATCH_CONTENT_TYPE, Attempts, EmitError, RetryPolicy
from producers.emitter.sync import endpoint_url

log = logging.getLogger(__name__)


def _log_error(err: EmitError) -> None:
    log.error("gateledger emitter: %s (%d event(s))", err, len(err.events))


class AsyncEmitter:
    """The asyncio twin of ``Emitter``: same batching, retries, back-pressure and error reporting.

    ``async with AsyncEmitter(url) as em: await em.emit(event)``; ``emit`` awaits only when
    ``max_buffer`` events are waiting.
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
        on_error: Callable[[EmitError], None] = _log_error,
        session: aiohttp.ClientSession | None = None,
    ) -> None:
        self.url = endpoint_url(url)
        self.token = token
        self.batch_size = batch_size
        self.flush_interval_s = flush_interval_s
        self.max_buffer = max_buffer
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.retry = retry
        self.on_error = on_error
        self.sent = 0
        self._session = session
        self._own_session = session is None
        self._buf: list[dict[str, Any]] = []
        self._wake = asyncio.Event()
        self._space = asyncio.Event()
        self._space.set()
        self._send_lock = asyncio.Lock()
        self._closed = False
        self._task: asyncio.Task[None] | None = None
        self._rng = random.Random()

    async def __aenter__(self) -> AsyncEmitter:
        await self.start()
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    async def start(self) -> None:
        """Open the HTTP session and start the background sender."""
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._task = asyncio.create_task(self._loop())

    async def emit(self, event: dict[str, Any]) -> None:
        """Queue one event."""
        if self._closed:
            raise RuntimeError("emitter is closed")
        while len(self._buf) >= self.max_buffer:
            self._space.clear()
            await self._space.wait()
        self._buf.append(event)
        if len(self._buf) >= self.batch_size:
            self._wake.set()

    async def flush(self) -> None:
        """Send everything queued so far; EmitError lists the events that were not delivered."""
        failed: list[EmitError] = []
        async with self._send_lock:
            while batch := self._take():
                failed.extend(await self._send(batch))
        if failed:
            events = [e for f in failed for e in f.events]
            raise EmitError(f"{len(events)} event(s) not delivered: {failed[0]}", events, failed[0].status,
                            [f.details for f in failed])

    async def close(self) -> None:
        """Send what is queued (failures to ``on_error``), stop the sender, close the session."""
        self._closed = True
        self._wake.set()
        if self._task is not None:
            await self._task
        try:
            # Failures at close go to on_error, like the background sender's: closing never raises.
            async with self._send_lock:
                while batch := self._take():
                    for err in await self._send(batch):
                        self.on_error(err)
        finally:
            if self._own_session and self._session is not None:
                await self._session.close()

    def _take(self) -> list[dict[str, Any]]:
        batch, self._buf = self._buf[: self.batch_size], self._buf[self.batch_size :]
        self._space.set()
        return batch

    async def _loop(self) -> None:
        while not self._closed:
            try:
                await asyncio.wait_for(self._wake.wait(), self.flush_interval_s)
            except TimeoutError:
                pass
            self._wake.clear()
            if self._closed:
                return
            async with self._send_lock:
                while batch := self._take():
                    for err in await self._send(batch):
                        self.on_error(err)
                    if len(self._buf) < self.batch_size:
                        break

    async def _post(self, batch: list[dict[str, Any]]) -> tuple[int, Any, str | None]:
        assert self._session is not None
        headers = {"Content-Type": BATCH_CONTENT_TYPE}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        async with self._session.post(self.url, data=jsonutil.dumps(batch), headers=headers,
                                      timeout=self.timeout) as resp:
            raw = await resp.read()
            try:
                payload = jsonutil.loads(raw) if raw else None
            except jsonutil.JSONDecodeError:
                payload = raw.decode("utf-8", "replace")
            return resp.status, payload, resp.headers.get("Retry-After")

    async def _send(self, batch: list[dict[str, Any]]) -> list[EmitError]:
        attempts = Attempts(self.retry, self._rng)
        while True:
            try:
                status, payload, retry_after = await self._post(batch)
            except (aiohttp.ClientError, OSError, TimeoutError) as exc:
                status, payload, retry_after = 0, repr(exc), None
            step = attempts.after(status, payload, retry_after, batch)
            if step.split:
                half = len(batch) // 2
                return await self._send(batch[:half]) + await self._send(batch[half:])
            if step.errors is not None:
                self.sent += step.sent
                return step.errors
            await asyncio.sleep(step.wait)
