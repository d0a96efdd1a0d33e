"""Per-caller limits: the token bucket and in-flight cap as pure logic (fake clock), then on the real ingest
app: 429 + Retry-After per token (another token unaffected), a concurrency cap, and slow-loris bodies 408."""

from __future__ import annotations

import asyncio
import random

import orjson
from gateledger.ratelimit import Limiter
from gateledger.settings import Settings
from producers.ingest.common import token_digest
from producers.ingest.limits import LIMITER
from tests import samples
from tests.producers.ingestutil import ingest_client
from tests.producers.ingest.test_refusals import TOKEN, secured


class Clock:
    def __init__(self) -> None:
        self.t = 1000.0

    def __call__(self) -> float:
        return self.t


def test_bucket_allows_burst_then_rate_and_never_more() -> None:
    clock = Clock()
    lim = Limiter(rate_per_s=10, burst=20, max_concurrent=0, clock=clock)
    allowed = sum(lim.acquire("a") is None for _ in range(50))
    assert allowed == 20
    refused = lim.acquire("a")
    assert refused is not None and refused[0] == "rate_limited" and 0 < refused[1] <= 0.1
    assert lim.acquire("b") is None  # callers do not share a bucket
    clock.t += 0.5
    assert sum(lim.acquire("a") is None for _ in range(50)) == 5
    # Over any window, no more than burst + rate * elapsed requests pass.
    rng = random.Random(7)
    lim = Limiter(rate_per_s=50, burst=10, max_concurrent=0, clock=clock)
    start, passed = clock.t, 0
    for _ in range(5000):
        clock.t += rng.random() * 0.01
        passed += lim.acquire("k") is None
    assert passed <= 10 + 50 * (clock.t - start) + 1e-6
    assert passed >= 50 * (clock.t - start) * 0.95  # and the rate is actually granted


def test_a_caller_s_own_rate_and_burst_replace_the_limiter_s() -> None:
    clock = Clock()
    lim = Limiter(rate_per_s=1000, burst=1000, max_concurrent=0, clock=clock)
    assert sum(lim.acquire("slow", 1.0, 3) is None for _ in range(10)) == 3
    assert sum(lim.acquire("fast") is None for _ in range(10)) == 10
    clock.t += 2.0
    assert sum(lim.acquire("slow", 1.0, 3) is None for _ in range(10)) == 2


def test_concurrency_cap_counts_in_flight_requests() -> None:
    lim = Limiter(rate_per_s=0, burst=1, max_concurrent=2, clock=Clock())
    assert lim.acquire("a") is None and lim.acquire("a") is None
    assert lim.acquire("a") == ("concurrency_limited", 1.0)
    lim.release("a")
    assert lim.inflight("a") == 1 and lim.acquire("a") is None


def test_a_token_over_its_rate_gets_429_with_retry_after_and_others_do_not(settings: Settings) -> None:
    ingest = secured(rate_limit_per_s=0.01, rate_limit_burst=5, tokens={TOKEN: "acme", "tok-globex": "globex"})

    async def main() -> None:
        async with ingest_client(settings, ingest) as http:
            body = orjson.dumps([samples.obot_llm()])
            statuses = []
            for _ in range(8):
                r = await http.post("/v1/ingest/obot-llm", data=body, headers={"Authorization": f"Bearer {TOKEN}"})
                statuses.append(r.status)
                if r.status == 429:
                    answer = await r.json()
                    assert answer["reason"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
            assert statuses == [200] * 5 + [429] * 3, statuses
            r = await http.post("/v1/ingest/obot-llm", data=body, headers={"Authorization": "Bearer tok-globex"})
            assert r.status == 200  # per token
            assert (await http.get("/healthz")).status == 200  # health and metrics are never limited

    asyncio.run(main())


def test_a_token_grant_with_its_own_rate_limit_is_held_to_it_and_the_others_to_the_service_s(
        settings: Settings) -> None:
    ingest = secured(tokens={TOKEN: "acme", "tok-slow": {"tenant": "acme", "rate_limit_per_s": 0.01,
                                                         "rate_limit_burst": 2}})

    async def main() -> None:
        async with ingest_client(settings, ingest) as http:
            body = orjson.dumps([samples.obot_llm()])
            got = {}
            for token in ("tok-slow", TOKEN):
                got[token] = []
                for _ in range(4):
                    r = await http.post("/v1/ingest/obot-llm", data=body,
                                        headers={"Authorization": f"Bearer {token}"})
                    got[token].append((r.status, (await r.json()).get("reason")))
            assert got == {"tok-slow": [(200, None)] * 2 + [(429, "rate_limited")] * 2,
                           TOKEN: [(200, None)] * 4}, got

    asyncio.run(main())


def test_concurrency_cap_and_slow_loris_bodies(settings: Settings) -> None:
    ingest = secured(max_concurrent_per_caller=1, body_read_timeout_s=1.0)

    async def main() -> None:
        async with ingest_client(settings, ingest) as http:
            auth = b"Authorization: Bearer " + TOKEN.encode() + b"\r\n"
            reader, writer = await asyncio.open_connection(http.host, http.port)
            writer.write(b"POST /v1/ingest/obot-llm HTTP/1.1\r\nHost: x\r\nContent-Length: 100\r\n" + auth +
                         b"\r\n[{\"partial\": ")
            await writer.drain()
            limiter = http.app[LIMITER]
            key = ("token", token_digest(TOKEN))
            while limiter.inflight(key) == 0:  # the server is now reading that body
                await asyncio.sleep(0)
            r = await http.post("/v1/ingest/obot-llm", data=orjson.dumps([samples.obot_llm()]),
                                headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status == 429 and (await r.json())["reason"] == "concurrency_limited"
            assert r.headers["Retry-After"] == "1"
            # The slow body is cut off after body_read_timeout_s: 408, and the slot is free again.
            answer = await asyncio.wait_for(reader.read(), 30)
            assert answer.startswith(b"HTTP/1.1 408") and b"body_timeout" in answer, answer[:300]
            writer.close()
            assert limiter.inflight(key) == 0
            r = await http.post("/v1/ingest/obot-llm", data=orjson.dumps([samples.obot_llm()]),
                                headers={"Authorization": f"Bearer {TOKEN}"})
            assert r.status == 200

    asyncio.run(main())
