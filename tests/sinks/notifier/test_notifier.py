"""The notifier on the real broker against a real local aiohttp receiver that fails for a while.

Checked: retries with backoff until the receiver recovers; each alert reaches each webhook exactly
once despite duplicate messages, restarts and a crash between delivery and offset commit; refusals
and give-ups are dead-lettered and not retried after a restart; bad messages are dead-lettered;
offsets are committed once the work is done.
"""

from __future__ import annotations

import asyncio
from collections import Counter, defaultdict
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import pytest
from aiohttp import web
from aiokafka import AIOKafkaConsumer

from gateledger import jsonutil
from gateledger.contracts.events import BudgetAlert, BudgetAlertKind
from gateledger.kafka import common_config, consumer_group_lag, ensure_gateledger_topics, make_producer, resolve
from gateledger.money.alerts import alert_id
from gateledger.net import free_port
from gateledger.settings import Settings
from gateledger.topics import Topic, topic_name
from sinks.notifier.main import run_notifier
from sinks.notifier.settings import NotifierSettings


class Receiver:
    """A webhook endpoint: /generic and /slack fail the first ``fail_first`` POSTs of each alert with 500;
    /refuse answers 400; /down always 503."""

    def __init__(self, fail_first: int = 2) -> None:
        self.fail_first = fail_first
        self.attempts: Counter[tuple[str, str]] = Counter()
        self.accepted: dict[str, list[dict[str, Any]]] = defaultdict(list)
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._runner: web.AppRunner | None = None

    async def _handle(self, request: web.Request) -> web.Response:
        body = await request.read()
        key = (request.path, request.headers["Idempotency-Key"])
        self.attempts[key] += 1
        if request.path == "/refuse":
            return web.Response(status=400, text="no such channel")
        if request.path == "/down" or self.attempts[key] <= self.fail_first:
            return web.Response(status=500 if request.path != "/down" else 503, text="try later")
        self.accepted[request.path].append(jsonutil.loads(body))
        return web.Response(status=200, text="ok")

    async def start(self) -> None:
        app = web.Application()
        app.router.add_post("/{name}", self._handle)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        await web.TCPSite(self._runner, "127.0.0.1", self.port).start()

    async def stop(self) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    def ids(self, path: str) -> list[str]:
        out = []
        for body in self.accepted[path]:
            out.append(body["alert_id"] if "alert_id" in body else body["blocks"][-1]["elements"][0]["text"].split("`")[1])
        return out


def make_alert(n: int, pct: int = 80) -> BudgetAlert:
    start = datetime(2026, 3, 1, tzinfo=UTC)
    return BudgetAlert(
        id=alert_id(f"b{n}", "month:2026-03", BudgetAlertKind.THRESHOLD, pct), tenant="acme", time=start,
        budget_id=f"b{n}", budget_name=f"budget-{n}", scope={"tenant": "acme"}, period_start=start,
        period_end=datetime(2026, 4, 1, tzinfo=UTC), period_key="month:2026-03", kind=BudgetAlertKind.THRESHOLD,
        threshold_pct=pct, spend_usd=Decimal("80.000000000123"), limit_usd=Decimal("100"),
        utilization=Decimal("0.800000000001"), action="block", fired_at=start,
    )


async def publish(settings: Settings, values: list[bytes]) -> None:
    target = resolve(settings.kafka, settings.core)
    await ensure_gateledger_topics(settings.kafka, target)
    producer = make_producer(settings.kafka, target, linger_ms=0)
    await producer.start()
    try:
        for v in values:
            await producer.send_and_wait(topic_name(Topic.BUDGET_ALERTS, target.topic_prefix), v, key=b"k")
    finally:
        await producer.stop()


async def lag(settings: Settings, group: str) -> int:
    target = resolve(settings.kafka, settings.core)
    parts = await consumer_group_lag(settings.kafka, target.bootstrap, group,
                                     [topic_name(Topic.BUDGET_ALERTS, target.topic_prefix)])
    return sum(p.lag for p in parts)


async def dead_letters(settings: Settings, want: int, timeout_s: float = 20) -> list[dict[str, Any]]:
    target = resolve(settings.kafka, settings.core)
    consumer = AIOKafkaConsumer(topic_name(Topic.DEAD_LETTERS, target.topic_prefix),
                                **common_config(settings.kafka, target.bootstrap), group_id=None,
                                auto_offset_reset="earliest", enable_auto_commit=False)
    await consumer.start()
    out: list[dict[str, Any]] = []
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while len(out) < want and asyncio.get_running_loop().time() < deadline:
            batch = await consumer.getmany(timeout_ms=300)
            for msgs in batch.values():
                out.extend(jsonutil.loads(m.value) for m in msgs)
    finally:
        await consumer.stop()
    return out


async def until(cond, timeout_s: float = 60, what: str = "condition") -> None:  # noqa: ANN001
    deadline = asyncio.get_running_loop().time() + timeout_s
    while True:
        if await cond() if asyncio.iscoroutinefunction(cond) else cond():
            return
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(0.1)


def notifier_settings(receiver: Receiver, group: str, **kw: Any) -> NotifierSettings:
    hooks = kw.pop("hooks", [{"name": "ops", "url": f"{receiver.url}/generic"},
                             {"name": "slack", "url": f"{receiver.url}/slack", "format": "slack"}])
    return NotifierSettings(group_id=group, webhooks=jsonutil.dumps_str(hooks), retry_initial_s=0.05,
                            retry_max_s=0.2, give_up_after_s=kw.pop("give_up_after_s", 30), **kw)


async def run_until(settings: Settings, ns: NotifierSettings, done, what: str, after_mark=None) -> None:  # noqa: ANN001
    stop = asyncio.Event()
    task = asyncio.create_task(run_notifier(settings, stop, ns, after_mark=after_mark))
    try:
        await until(lambda: task.done() or done(), what=what)
        if task.done():
            task.result()
        deadline = asyncio.get_running_loop().time() + 30
        while await lag(settings, ns.group_id) and asyncio.get_running_loop().time() < deadline:
            await asyncio.sleep(0.2)
    finally:
        stop.set()
        await task


def test_retries_until_delivered_once_per_webhook_across_duplicates_and_restart(settings: Settings, test_id: str) -> None:
    async def main() -> None:
        receiver = Receiver(fail_first=2)
        await receiver.start()
        try:
            a = [make_alert(i) for i in range(1, 5)]
            await publish(settings, [jsonutil.dumps(x.model_dump(mode="json")) for x in a[:3]]
                          + [jsonutil.dumps(a[0].model_dump(mode="json")), b"{not json"])
            ns = notifier_settings(receiver, f"notif-{test_id}")
            await run_until(settings, ns, lambda: len(receiver.accepted["/slack"]) >= 3
                            and len(receiver.accepted["/generic"]) >= 3, "3 alerts on both webhooks")
            assert await lag(settings, ns.group_id) == 0, "offsets are committed after delivery"
            for path in ("/generic", "/slack"):
                assert sorted(receiver.ids(path)) == sorted(x.id for x in a[:3])
                for x in a[:3]:
                    assert receiver.attempts[(path, x.id)] == 3, "two 500s, then delivered"
            generic = receiver.accepted["/generic"][0]
            assert generic["type"] == "gateledger.budget_alert"
            assert generic["alert"]["spend_usd"] == "80.000000000123", "amounts travel exact"
            slack = receiver.accepted["/slack"][0]
            assert "reached 80%" in slack["text"] and slack["blocks"][1]["fields"]
            letters = await dead_letters(settings, 1)
            assert [(d["stage"], d["reason"]) for d in letters] == [("notify", "invalid_alert")]

            # A restart re-reads the sent store: a re-emitted alert is not sent again, a new one is.
            await publish(settings, [jsonutil.dumps(a[1].model_dump(mode="json")),
                                     jsonutil.dumps(a[3].model_dump(mode="json"))])
            await run_until(settings, ns, lambda: len(receiver.accepted["/generic"]) >= 4
                            and len(receiver.accepted["/slack"]) >= 4, "the new alert")
            assert await lag(settings, ns.group_id) == 0
            for path in ("/generic", "/slack"):
                assert Counter(receiver.ids(path)) == Counter(x.id for x in a)
                assert receiver.attempts[(path, a[1].id)] == 3, "the re-emitted alert was not POSTed again"
        finally:
            await receiver.stop()

    asyncio.run(main())


def test_crash_between_delivery_and_commit_does_not_resend(settings: Settings, test_id: str) -> None:
    async def main() -> None:
        receiver = Receiver(fail_first=0)
        await receiver.start()
        try:
            first, second = make_alert(7), make_alert(8)
            await publish(settings, [jsonutil.dumps(first.model_dump(mode="json")),
                                     jsonutil.dumps(second.model_dump(mode="json"))])
            ns = notifier_settings(receiver, f"notif-{test_id}", hooks=[{"name": "ops", "url": f"{receiver.url}/generic"}])

            def crash(alert: str, webhook: str) -> None:
                if alert == second.id:
                    raise RuntimeError("worker killed after delivery, before the offset commit")

            with pytest.raises(RuntimeError, match="worker killed"):
                await run_notifier(settings, asyncio.Event(), ns, after_mark=crash)
            assert receiver.ids("/generic") == [first.id, second.id]
            assert await lag(settings, ns.group_id) == 1, "the crashed message was not committed"
            await run_until(settings, ns, lambda: True, "restart")
            assert await lag(settings, ns.group_id) == 0
            assert receiver.ids("/generic") == [first.id, second.id], "nothing was sent twice"
            assert receiver.attempts[("/generic", second.id)] == 1
        finally:
            await receiver.stop()

    asyncio.run(main())


def test_refusals_and_give_ups_are_dead_lettered_once(settings: Settings, test_id: str) -> None:
    async def main() -> None:
        receiver = Receiver()
        await receiver.start()
        try:
            alert = make_alert(9, pct=100)
            await publish(settings, [jsonutil.dumps(alert.model_dump(mode="json"))])
            hooks = [{"name": "refuse", "url": f"{receiver.url}/refuse"},
                     {"name": "down", "url": f"{receiver.url}/down"}]
            ns = notifier_settings(receiver, f"notif-{test_id}", hooks=hooks, give_up_after_s=0.6)
            await run_until(settings, ns, lambda: receiver.attempts[("/down", alert.id)] >= 3, "retries on /down")
            letters = await dead_letters(settings, 2)
            assert sorted(d["reason"] for d in letters) == ["webhook_gave_up", "webhook_rejected"]
            assert all(d["details"]["alert_id"] == alert.id for d in letters)
            assert receiver.attempts[("/refuse", alert.id)] == 1, "a 4xx is not retried"
            down_attempts = receiver.attempts[("/down", alert.id)]
            await run_until(settings, ns, lambda: True, "restart")
            assert receiver.attempts[("/refuse", alert.id)] == 1 and receiver.attempts[("/down", alert.id)] == down_attempts
        finally:
            await receiver.stop()

    asyncio.run(main())
