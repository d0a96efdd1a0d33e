"""The rest of a delivery that had to wait runs as faust would run it: results, errors, cancellation."""

from __future__ import annotations

import asyncio

import pytest

from stream_processors.consumer_thread import _Rest


async def _delivery(gate: asyncio.Future[int], log: list[str]) -> int:
    log.append("first step")
    try:
        value = await gate
    except asyncio.CancelledError:
        log.append("cancelled inside")
        raise
    await asyncio.sleep(0)  # a bare yield too
    log.append("done")
    return value * 2


def _started(gate: asyncio.Future[int], log: list[str]) -> _Rest:
    coro = _delivery(gate, log)
    pending = coro.send(None)  # the first step, as ActiveOnlyConsumer.wait_first takes it
    assert pending is gate
    return _Rest(coro, pending)


def test_the_rest_resumes_after_the_future_and_returns_the_result() -> None:
    async def main() -> tuple[int, list[str]]:
        log: list[str] = []
        gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(_started(gate, log))
        await asyncio.sleep(0)
        assert not task.done()
        gate.set_result(21)
        return await task, log

    assert asyncio.run(main()) == (42, ["first step", "done"])


def test_an_error_of_the_awaited_future_reaches_the_coroutine_and_the_caller() -> None:
    async def main() -> None:
        gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(_started(gate, []))
        await asyncio.sleep(0)
        gate.set_exception(ValueError("bad record"))
        await task

    with pytest.raises(ValueError, match="bad record"):
        asyncio.run(main())


def test_cancelling_the_rest_cancels_the_coroutine_where_it_waits() -> None:
    async def main() -> list[str]:
        log: list[str] = []
        gate: asyncio.Future[int] = asyncio.get_running_loop().create_future()
        task = asyncio.ensure_future(_started(gate, log))
        await asyncio.sleep(0)
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
        return log

    assert asyncio.run(main()) == ["first step", "cancelled inside"]
