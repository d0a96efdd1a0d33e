"""A loopback TCP proxy that can cut every connection and refuse new ones, then come back: a network
outage between clients and a server whose state survives it (fault tests)."""

from __future__ import annotations

import asyncio
import threading
from contextlib import suppress


class TcpProxy:
    """Forwards 127.0.0.1:<port> to a target; ``cut()`` and ``restore()`` from any thread."""

    def __init__(self, port: int, target_host: str, target_port: int) -> None:
        self.port = port
        self.target = (target_host, target_port)
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, name="tcp-proxy", daemon=True)
        self._server: asyncio.base_events.Server | None = None
        self._writers: set[asyncio.StreamWriter] = set()

    def start(self) -> TcpProxy:
        """Listen and forward."""
        self._thread.start()
        self._call(self._listen())
        return self

    def cut(self) -> None:
        """Close every connection and stop accepting: clients see connection refused."""
        self._call(self._cut())

    def restore(self) -> None:
        """Accept and forward again."""
        self._call(self._listen())

    def stop(self) -> None:
        """Cut and end the proxy's thread."""
        with suppress(RuntimeError):
            self.cut()
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(5)

    def _call(self, coro: object) -> None:
        asyncio.run_coroutine_threadsafe(coro, self._loop).result(10)  # type: ignore[arg-type]

    async def _listen(self) -> None:
        if self._server is None:
            self._server = await asyncio.start_server(self._handle, "127.0.0.1", self.port, reuse_address=True)

    async def _cut(self) -> None:
        server, self._server = self._server, None
        if server is not None:
            server.close()
        for w in list(self._writers):
            w.transport.abort()
        self._writers.clear()
        if server is not None:
            await server.wait_closed()

    async def _handle(self, client_r: asyncio.StreamReader, client_w: asyncio.StreamWriter) -> None:
        try:
            server_r, server_w = await asyncio.open_connection(*self.target)
        except OSError:
            client_w.transport.abort()
            return
        self._writers.update((client_w, server_w))

        async def pipe(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
            try:
                while data := await r.read(65536):
                    w.write(data)
                    await w.drain()
            except (ConnectionError, OSError):
                pass
            finally:
                w.transport.abort()

        await asyncio.gather(pipe(client_r, server_w), pipe(server_r, client_w))
        self._writers.discard(client_w)
        self._writers.discard(server_w)
