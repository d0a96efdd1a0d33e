"""The Obot audit API poller against a local Obot API that pages by upstream's rules, on the real broker.

Paging, ties, restarts and errors; the per-version behaviour is in test_obot_versions.py.
"""

from __future__ import annotations

import asyncio
import random
from collections import Counter
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
from aiohttp.test_utils import TestServer

from gateledger.kafka import ensure_gateledger_topics, resolve
from gateledger.masking import Masker
from gateledger.settings import Settings
from gateledger.topics import Topic
from producers.polling.checkpoint import Checkpoint, CheckpointStore
from producers import telemetry
from producers.obot.poller import ObotPoller, PollError
from producers.obot.settings import ObotPollerSettings
from producers.publisher import Publisher
from tests.producers.fake_obot_api import FakeObotApi
from tests.producers.kafkaread import read_topic

NOW = datetime.now(UTC).replace(microsecond=0)


def poller_settings(url: str, tmp_path: Path, **kw: object) -> ObotPollerSettings:
    base = dict(url=url, token="obot-api-key", tenant="acme", install="prod", page_size=10, overlap_s=120,
                checkpoint_dir=tmp_path / "ckpt", interval_s=0.05, backoff_min_s=0.05, backoff_max_s=0.2)
    base.update(kw)
    return ObotPollerSettings(**base)  # type: ignore[arg-type]


@asynccontextmanager
async def live_poller(settings: Settings, api: FakeObotApi, tmp_path: Path,
                      **kw: object) -> AsyncIterator[tuple[ObotPoller, aiohttp.ClientSession]]:
    """A poller (own publisher and HTTP session) against the fake, served on loopback."""
    target = resolve(settings.kafka, settings.core)
    await ensure_gateledger_topics(settings.kafka, target)
    async with TestServer(api.app(), host="127.0.0.1") as server:
        ps = poller_settings(str(server.make_url("")), tmp_path, **kw)
        async with Publisher(settings.kafka, target) as pub, aiohttp.ClientSession() as session:
            yield ObotPoller(ps, pub, Masker(salt=b"s"), tmp_path), session


async def cycle(settings: Settings, ps: ObotPollerSettings, tmp_path: Path, streams: tuple[str, ...] = ("mcp",)) -> int:
    """One poll cycle of a fresh poller process (new publisher, checkpoint from disk)."""
    target = resolve(settings.kafka, settings.core)
    async with Publisher(settings.kafka, target) as pub, aiohttp.ClientSession() as session:
        poller = ObotPoller(ps, pub, Masker(salt=b"s"), tmp_path)
        return sum([await poller.poll_stream(session, s) for s in streams])


def list_requests(api: FakeObotApi, stream: str = "mcp") -> list[dict[str, str]]:
    """The list requests of one stream, in order."""
    return [q for s, q in api.requests if s == stream]


def test_ties_across_pages_and_arrivals_while_paging_each_published_once(settings: Settings, tmp_path: Path) -> None:
    api = FakeObotApi(version="0.23")  # ties in no stable order
    # 95 rows, 7 per timestamp: every page boundary cuts through a tie group.
    api.add_mcp(95, NOW - timedelta(minutes=10), step_s=2, tie=7)

    async def arrivals(stream: str, offset: int) -> None:
        if len(list_requests(api)) == 4 and len(api.rows["mcp"]) == 95:
            # Late rows inside already-paged time (they shift the offsets) and new ones at the end.
            api.add_mcp(4, NOW - timedelta(minutes=9, seconds=59), step_s=0, first_id=1000)
            api.add_mcp(3, NOW - timedelta(seconds=30), step_s=1, first_id=2000)

    api.hook = arrivals

    async def main() -> None:
        await ensure_gateledger_topics(settings.kafka, resolve(settings.kafka, settings.core))
        async with TestServer(api.app(), host="127.0.0.1") as server:
            ps = poller_settings(str(server.make_url("")), tmp_path, overlap_s=900)
            first = await cycle(settings, ps, tmp_path)
            second = await cycle(settings, ps, tmp_path)
            third = await cycle(settings, ps, tmp_path)
            assert first + second == 102 and third == 0
        events = await read_topic(settings, Topic.RAW_OBOT_MCP, want=102)
        ids = Counter(e["data"]["id"] for e in events)
        assert len(ids) == 102 and set(ids.values()) == {1}, "every row exactly once"
        assert {e["tenant"] for e in events} == {"acme"} and {e["source"] for e in events} == {"obot/prod/mcp"}
        q = list_requests(api)[0]
        assert q["sort_by"] == "created_at" and q["sort_order"] == "asc" and q["limit"] == "10"
        assert q["start_time"].endswith("Z") and "end_time" in q

    asyncio.run(main())


def test_restart_in_the_middle_neither_skips_nor_republishes(settings: Settings, tmp_path: Path) -> None:
    api = FakeObotApi(version="0.24")  # AuditLogEvent lists, details fetched per record
    api.add_mcp(57, NOW - timedelta(hours=2), step_s=5, tie=4)
    api.add_llm(33, NOW - timedelta(hours=1), step_s=1, tie=3)
    reached = asyncio.Event()
    block = asyncio.Event()

    async def stall(stream: str, offset: int) -> None:
        if stream == "mcp" and len(list_requests(api)) == 4 and not block.is_set():
            reached.set()
            await block.wait()  # the "process" dies while waiting for page 4

    api.hook = stall

    async def main() -> None:
        await ensure_gateledger_topics(settings.kafka, resolve(settings.kafka, settings.core))
        async with TestServer(api.app(), host="127.0.0.1") as server:
            ps = poller_settings(str(server.make_url("")), tmp_path)
            task = asyncio.create_task(cycle(settings, ps, tmp_path, ("mcp", "llm")))
            await asyncio.wait_for(reached.wait(), 20)
            task.cancel()
            await asyncio.gather(task, return_exceptions=True)
            block.set()
            saved = CheckpointStore(tmp_path / "ckpt", "prod").load("mcp")
            assert saved.watermark is not None and len(saved.recent) >= 20, "three pages were checkpointed"
            assert await cycle(settings, ps, tmp_path, ("mcp", "llm")) == 57 - len(saved.recent) + 33
            assert await cycle(settings, ps, tmp_path, ("mcp", "llm")) == 0
        mcp = await read_topic(settings, Topic.RAW_OBOT_MCP, want=57)
        llm = await read_topic(settings, Topic.RAW_OBOT_LLM, want=33)
        assert len(mcp) == 57 and len({e["id"] for e in mcp}) == 57, "no row skipped, none published twice"
        assert {e["type"] for e in mcp} == {"obot.mcp.audit_event"}
        assert len(llm) == 33 and len({e["data"]["id"] for e in llm}) == 33

    asyncio.run(main())


def test_errors_back_off_and_retry_from_the_checkpoint(settings: Settings, tmp_path: Path) -> None:
    api = FakeObotApi(version="0.23")
    api.add_mcp(25, NOW - timedelta(minutes=5), step_s=1)
    api.fail_next = 3

    async def main() -> None:
        target = resolve(settings.kafka, settings.core)
        await ensure_gateledger_topics(settings.kafka, target)
        async with TestServer(api.app(), host="127.0.0.1") as server:
            ps = poller_settings(str(server.make_url("")), tmp_path, streams=["mcp"])
            stop = asyncio.Event()
            async with Publisher(settings.kafka, target) as pub:
                poller = ObotPoller(ps, pub, Masker(salt=b"s"), tmp_path, rng=random.Random(1))
                task = asyncio.create_task(poller.run(stop))
                deadline = asyncio.get_running_loop().time() + 20
                while CheckpointStore(tmp_path / "ckpt", "prod").load("mcp").watermark is None:
                    assert asyncio.get_running_loop().time() < deadline
                    await asyncio.sleep(0.05)
                await asyncio.sleep(0.3)
                stop.set()
                await asyncio.wait_for(task, 10)
            failed = [q for q in list_requests(api) if q.get("offset") == "0"]
            assert len(failed) >= 4, "three failures, then success"
        events = await read_topic(settings, Topic.RAW_OBOT_MCP, want=25)
        assert len(events) == 25

    asyncio.run(main())


def test_a_wrong_token_is_an_error_never_a_silent_success(settings: Settings, tmp_path: Path) -> None:
    api = FakeObotApi(version="0.24")
    api.add_mcp(5, NOW - timedelta(minutes=5), step_s=1)

    async def main() -> None:
        async with live_poller(settings, api, tmp_path, token="not-the-key") as (poller, session):
            try:
                await poller.poll_stream(session, "mcp")
            except PollError as exc:
                assert exc.status == 401
            else:
                raise AssertionError("a 401 must fail the cycle")
            errors = telemetry.POLLER_ERRORS.labels(stream="mcp", kind="obot")
            before = errors._value.get()  # noqa: SLF001
            assert await poller.cycle(session) is False, "the run loop backs off after a 401"
            assert errors._value.get() == before + 1  # noqa: SLF001
        assert CheckpointStore(tmp_path / "ckpt", "prod").load("mcp").watermark is None
        assert {status for _, status, _ in api.refused} == {401}

    asyncio.run(main())


def test_checkpoint_window_and_file() -> None:
    cp = Checkpoint()
    t = NOW
    cp.advance({"a": t, "b": t - timedelta(seconds=10)}, timedelta(seconds=60))
    cp.advance({"c": t + timedelta(seconds=100)}, timedelta(seconds=60))
    assert cp.watermark == t + timedelta(seconds=100) and set(cp.recent) == {"c"}
    cp.advance({"d": t + timedelta(seconds=50)}, timedelta(seconds=60))  # late but inside the window
    assert cp.watermark == t + timedelta(seconds=100) and set(cp.recent) == {"c", "d"}
    again = Checkpoint.from_json(cp.to_json())
    assert again == cp


def test_tie_group_larger_than_a_page_is_drained(settings: Settings, tmp_path: Path) -> None:
    api = FakeObotApi(version="0.23", seed=11)
    api.add_mcp(6, NOW - timedelta(minutes=3), step_s=1)
    api.add_mcp(43, NOW - timedelta(minutes=2), step_s=0)  # 43 rows, one timestamp, pages of 10
    api.add_mcp(5, NOW - timedelta(minutes=1), step_s=1)

    async def main() -> None:
        await ensure_gateledger_topics(settings.kafka, resolve(settings.kafka, settings.core))
        async with TestServer(api.app(), host="127.0.0.1") as server:
            ps = poller_settings(str(server.make_url("")), tmp_path)
            assert await cycle(settings, ps, tmp_path) == 54
            assert await cycle(settings, ps, tmp_path) == 0
        events = await read_topic(settings, Topic.RAW_OBOT_MCP, want=54)
        assert len(events) == 54 and len({e["data"]["id"] for e in events}) == 54
        group_queries = [q for q in list_requests(api) if q["start_time"] != q["end_time"] and q["offset"] != "0"]
        assert group_queries, "the big tie group was paged on its own"

    asyncio.run(main())


def test_serve_poller_killed_mid_run_resumes_from_its_checkpoint(settings: Settings, tmp_path: Path, gl_env,
                                                                  processes) -> None:
    """`gateledger serve poller` as a process, SIGKILLed while paging, started again."""
    import os
    import signal

    from tests.conftest import subprocess_env

    api = FakeObotApi(version="0.24")
    api.add_mcp(120, NOW - timedelta(hours=1), step_s=3, tie=2)
    api.add_llm(40, NOW - timedelta(hours=1), step_s=7)
    slow = asyncio.Event()

    async def throttle(stream: str, offset: int) -> None:
        if not slow.is_set():
            await asyncio.sleep(0.15)  # slow enough to be killed mid-way

    api.hook = throttle

    async def main() -> None:
        await ensure_gateledger_topics(settings.kafka, resolve(settings.kafka, settings.core))
        async with TestServer(api.app(), host="127.0.0.1") as server:
            env = subprocess_env({**gl_env, "GATELEDGER_OBOT_URL": str(server.make_url("")),
                                  "GATELEDGER_OBOT_TOKEN": "obot-api-key", "GATELEDGER_OBOT_PAGE_SIZE": "10",
                                  "GATELEDGER_OBOT_INTERVAL_S": "0.2", "GATELEDGER_OBOT_INSTALL": "prod"})
            store = CheckpointStore(Path(gl_env["GATELEDGER_DATA_DIR"]) / "obot-poller", "prod")
            first = processes.gateledger("serve", "poller", env=env, log=tmp_path / "poller1.log")
            loop = asyncio.get_running_loop()
            deadline = loop.time() + 60
            while len(store.load("mcp").recent) < 30:
                assert first.poll() is None and loop.time() < deadline, (tmp_path / "poller1.log").read_text()
                await asyncio.sleep(0.05)
            os.kill(first.pid, signal.SIGKILL)
            first.wait(10)
            slow.set()
            second = processes.gateledger("serve", "poller", env=env, log=tmp_path / "poller2.log")
            last = max(r["created"] for r in api.rows["mcp"])
            last_llm = max(parse_t(r["createdAt"]) for r in api.rows["llm"])
            while store.load("mcp").watermark != last or store.load("llm").watermark != last_llm:
                assert second.poll() is None and loop.time() < deadline + 60, (tmp_path / "poller2.log").read_text()
                await asyncio.sleep(0.1)
            second.send_signal(signal.SIGTERM)
            assert second.wait(20) == 0
        mcp = await read_topic(settings, Topic.RAW_OBOT_MCP, until=lambda got: len({e["id"] for e in got}) >= 120)
        llm = await read_topic(settings, Topic.RAW_OBOT_LLM, until=lambda got: len({e["id"] for e in got}) >= 40)
        assert len({e["id"] for e in mcp}) == 120 and len({e["id"] for e in llm}) == 40, "nothing skipped"
        # A kill between Kafka's ack and the checkpoint rename can publish one page again, no more.
        assert len(mcp) <= 120 + 10 and len(llm) <= 40 + 10

    asyncio.run(main())


def parse_t(value: str) -> datetime:
    from gateledger.jsonutil import parse_time

    return parse_time(value)  # type: ignore[return-value]


def test_kafka_down_keeps_the_checkpoint_and_the_next_cycle_publishes(settings: Settings, tmp_path: Path) -> None:
    """Own broker, stopped under the poller: no checkpoint moves, nothing is lost once it is back."""
    from gateledger.kafka import KafkaTarget, wait_for_broker
    from gateledger.stack.broker import TansuBroker
    from producers.publisher import PublishError

    api = FakeObotApi(version="0.23")
    api.add_mcp(30, NOW - timedelta(minutes=30), step_s=10)
    broker = TansuBroker(log_path=tmp_path / "own-broker.log")
    broker.start()
    target = KafkaTarget(broker.bootstrap, True, settings.core.topic_prefix)
    kafka = settings.kafka.model_copy(update={"request_timeout_ms": 1000})

    async def main() -> None:
        await ensure_gateledger_topics(kafka, target)
        async with TestServer(api.app(), host="127.0.0.1") as server:
            ps = poller_settings(str(server.make_url("")), tmp_path)
            async with Publisher(kafka, target, timeout_s=1.5) as pub, aiohttp.ClientSession() as session:
                poller = ObotPoller(ps, pub, Masker(salt=b"s"), tmp_path)
                await asyncio.to_thread(broker.stop)
                try:
                    await poller.poll_stream(session, "mcp")
                except PublishError:
                    pass
                else:
                    raise AssertionError("a cycle must fail while Kafka is down")
                assert CheckpointStore(tmp_path / "ckpt", "prod").load("mcp").watermark is None
                await asyncio.sleep(1.2)  # queued batches expire: nothing in flight across the restart
                await asyncio.to_thread(broker.start)
                await wait_for_broker(broker.bootstrap)
                await ensure_gateledger_topics(kafka, target)
                assert await poller.poll_stream(session, "mcp") == 30
        events = await read_topic(settings, Topic.RAW_OBOT_MCP, bootstrap=broker.bootstrap,
                                  until=lambda got: len({e["id"] for e in got}) >= 30)
        assert len({e["id"] for e in events}) == 30

    try:
        asyncio.run(main())
    finally:
        broker.stop()
