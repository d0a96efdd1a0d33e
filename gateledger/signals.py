"""Running a service until it is told to stop: the one place each stage's entry point gets SIGTERM / SIGINT."""

from __future__ import annotations

import asyncio
import signal
from collections.abc import Awaitable, Callable


def run_until_stopped(run: Callable[[asyncio.Event], Awaitable[None]],
                      handlers: dict[signal.Signals, Callable[[], None]] | None = None) -> None:
    """Run ``run(stop)`` in a new event loop; SIGTERM or SIGINT sets ``stop`` (a clean shutdown: the
    service finishes what it acknowledged), ``handlers`` adds other signals' handlers."""

    async def _main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(sig, stop.set)
        for sig, handler in (handlers or {}).items():
            loop.add_signal_handler(sig, handler)
        await run(stop)

    asyncio.run(_main())
