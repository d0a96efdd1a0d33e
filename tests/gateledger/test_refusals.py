"""The refusal recorder (gateledger/refusals.py): a flood of any size from any number of callers becomes a
bounded number of dead letters whose counts add up to every refusal, kept across failed writes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from gateledger.contracts.events import DeadLetter
from gateledger.masking import Masker
from gateledger.refusals import OVERFLOW, RefusalRecorder


class Topic:
    """The dead-letter topic as the recorder sees it: acknowledges a write, or refuses it (Kafka down)."""

    def __init__(self) -> None:
        self.letters: list[DeadLetter] = []
        self.down = False

    async def send(self, letters: Sequence[DeadLetter]) -> None:
        if self.down:
            raise OSError("broker unreachable")
        self.letters.extend(letters)

    def latest(self) -> dict[str, DeadLetter]:
        """Per id, the highest version (what ClickHouse's ReplacingMergeTree keeps)."""
        out: dict[str, DeadLetter] = {}
        for d in self.letters:
            if d.id not in out or d.version > out[d.id].version:
                out[d.id] = d
        return out


def test_a_flood_from_many_addresses_is_bounded_and_every_refusal_counted() -> None:
    topic = Topic()
    rec = RefusalRecorder(stage="ingest", masker=Masker(salt=b"t"), send=topic.send, window_s=3600, max_keys=50)

    async def main() -> None:
        for i in range(20_000):
            rec.record(origin="http:/v1/ingest/{format}", reason="unauthenticated" if i % 3 else "rate_limited",
                       status=401 if i % 3 else 429, message="missing or unknown bearer token",
                       caller=f"10.0.{i % 250}.{i % 7}", names=["Authorization", "X-Secret-Name-" + "x" * 200])
        await rec.close()

    asyncio.run(main())
    letters = list(topic.latest().values())
    assert len(letters) <= 50 + 2  # the callers that fit, then one overflow letter per reason and status
    assert sum(d.count for d in letters) == 20_000 == rec.written
    overflow = [d for d in letters if d.caller == OVERFLOW]
    assert {(d.reason, d.http_status) for d in overflow} == {("unauthenticated", 401), ("rate_limited", 429)}
    for d in letters:
        assert d.original == "" and d.original_size == 0 and d.first_at <= d.last_at
        assert len(d.details["header_names"]) == 2 and all(len(n) <= 64 for n in d.details["header_names"])


def test_counts_survive_a_failed_write_and_the_rewrite_replaces_the_first() -> None:
    topic = Topic()
    rec = RefusalRecorder(stage="notify", masker=Masker(salt=b"t"), send=topic.send, window_s=3600)

    async def main() -> None:
        for _ in range(3):
            rec.record(origin="http:/alertmanager", reason="unauthenticated", status=401, message="m", caller="::1")
        topic.down = True
        assert await rec.flush() == 0 and rec.pending == 3
        for _ in range(2):
            rec.record(origin="http:/alertmanager", reason="unauthenticated", status=401, message="m", caller="::1")
        topic.down = False
        assert await rec.flush() == 5
        await rec.close()  # nothing left

    asyncio.run(main())
    assert len(topic.letters) == 1 and topic.letters[0].count == 5 and topic.letters[0].version == 2


def test_the_window_writes_without_a_stop_and_a_later_window_is_a_new_letter() -> None:
    topic = Topic()
    rec = RefusalRecorder(stage="ingest", masker=Masker(salt=b"t"), send=topic.send, window_s=0.05)

    async def main() -> None:
        rec.record(origin="tap:/api/policy/pre-check", reason="body_timeout", status=408, message="m",
                   caller="127.0.0.1", tenant="acme")
        while rec.pending:  # the window's own timer writes it
            await asyncio.sleep(0.01)
        rec.record(origin="tap:/api/policy/pre-check", reason="body_timeout", status=408, message="m",
                   caller="127.0.0.1", tenant="acme")
        await rec.close()

    asyncio.run(main())
    assert [(d.count, d.tenant, d.version) for d in topic.letters] == [(1, "acme", 1), (1, "acme", 1)]
    assert topic.letters[0].id != topic.letters[1].id


def test_what_aiohttp_refuses_before_the_middleware_is_counted_once_and_what_reaches_it_is_not() -> None:
    """``unrouted_refusals`` on a real aiohttp server: the parser's 400s and an unknown Expect's 417 are
    counted as bad_request; a 404 or a handler's 400 (the door's middleware saw them: REACHED) are not."""
    from aiohttp import web
    from aiohttp.test_utils import TestServer

    from gateledger.refusals import mark_reached, unrouted_refusals
    from tests.rawhttp import malformed_requests, raw_request

    topic = Topic()
    rec = RefusalRecorder(stage="ingest", masker=Masker(salt=b"t"), send=topic.send, window_s=3600)

    @web.middleware
    async def door(request: web.Request, handler) -> web.StreamResponse:  # type: ignore[no-untyped-def]
        mark_reached(request)
        return await handler(request)

    async def refuse(_: web.Request) -> web.Response:
        return web.json_response({"reason": "schema"}, status=400)

    async def main() -> None:
        app = web.Application(middlewares=[door], handler_args=unrouted_refusals(lambda: rec, "http"))
        app.router.add_post("/x", refuse)
        async with TestServer(app, host="127.0.0.1") as srv:
            base = str(srv.make_url("")).rstrip("/")
            statuses = [(await raw_request(base, data))[0] for data in malformed_requests("/x")]
            assert statuses.count(400) == len(statuses) - 1 and statuses[-1] == 417, statuses
            for path in ("/x", "/nothing"):
                got, _ = await raw_request(base, b"POST " + path.encode() + b" HTTP/1.1\r\nHost: h\r\n"
                                           b"Connection: close\r\nContent-Length: 0\r\n\r\n")
                assert got in (400, 404)
        await rec.close()

    asyncio.run(main())
    counted = {(d.origin, d.reason, d.http_status): d.count for d in topic.latest().values()}
    assert counted == {("http:aiohttp", "bad_request", 400): len(malformed_requests("/x")) - 1,
                       ("http:aiohttp", "bad_request", 417): 1}
