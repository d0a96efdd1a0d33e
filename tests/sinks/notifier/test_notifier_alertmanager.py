"""The notifier's ``POST /alertmanager`` relay, served by the real notifier on the real broker, against a
local receiver that fails for a while: each distinct notification reaches each webhook once, whatever
repeats, concurrent duplicates (an HA pair) and restarts; a webhook still failing makes the answer 503
(Alertmanager retries) without re-sending to the others; refusals and bad payloads are dead-lettered."""

from __future__ import annotations

import asyncio
import copy
from typing import Any

import aiohttp

from gateledger import jsonutil
from gateledger.settings import Settings
from tests.rawhttp import ODD_VALUES, raw_post
from tests.sinks.conftest import running_notifier
from tests.sinks.notifier.test_notifier import Receiver, dead_letters

PAYLOAD: dict[str, Any] = {
    "version": "4",
    "groupKey": '{}/{category="budget"}:{alertname="GateledgerBudgetExceeded", budget_id="acme-month"}',
    "truncatedAlerts": 0,
    "status": "firing",
    "receiver": "gateledger-budgets",
    "groupLabels": {"alertname": "GateledgerBudgetExceeded", "budget_id": "acme-month"},
    "commonLabels": {"alertname": "GateledgerBudgetExceeded", "budget_id": "acme-month", "budget_name": "acme-month",
                     "category": "budget", "severity": "critical"},
    "commonAnnotations": {"summary": "Budget acme-month is at 104% of its limit"},
    "externalURL": "http://127.0.0.1:9093",
    "alerts": [{
        "status": "firing",
        "labels": {"alertname": "GateledgerBudgetExceeded", "budget_id": "acme-month", "budget_name": "acme-month",
                   "category": "budget", "severity": "critical"},
        "annotations": {"summary": "Budget acme-month is at 104% of its limit"},
        "startsAt": "2026-11-21T21:00:00.000Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://127.0.0.1:9090/graph",
        "fingerprint": "c7a8f3e1d2b4a6f0",
    }],
}


def resolved(payload: dict[str, Any]) -> dict[str, Any]:
    out = copy.deepcopy(payload)
    out["status"] = out["alerts"][0]["status"] = "resolved"
    out["alerts"][0]["endsAt"] = "2026-11-21T21:05:00.000Z"
    return out


async def post(base: str, payload: Any, **headers: str) -> tuple[int, dict[str, Any]]:
    async with aiohttp.ClientSession() as s:
        data = payload if isinstance(payload, bytes) else jsonutil.dumps(payload)
        async with s.post(f"{base}/alertmanager", data=data, headers=headers) as r:
            return r.status, await r.json()


def test_relay_delivers_each_notification_once(settings: Settings) -> None:
    async def main() -> None:
        receiver = Receiver(fail_first=2)
        await receiver.start()
        hooks = [{"name": "oncall", "url": f"{receiver.url}/generic"},
                 {"name": "slack", "url": f"{receiver.url}/slack", "format": "slack"},
                 {"name": "ledger-only", "url": f"{receiver.url}/ledger", "sources": ["budget_alerts"]}]
        try:
            async with running_notifier(settings, hooks) as base:
                status, body = await post(base, PAYLOAD)
                assert status == 200 and sorted(body["delivered"]) == ["oncall", "slack"], body
                key = body["dedup_key"]
                got = receiver.accepted["/generic"]
                assert len(got) == 1 and got[0]["type"] == "gateledger.alertmanager" and got[0]["dedup_key"] == key
                assert got[0]["alerts"][0]["labels"]["budget_id"] == "acme-month", "Alertmanager's payload, unchanged"
                assert got[0]["summary"] == "[FIRING] Budget acme-month is at 104% of its limit"
                assert receiver.accepted["/slack"][0]["text"].startswith("[FIRING] Budget acme-month")
                assert receiver.attempts[("/generic", key)] == 3, "two 500s, then delivered"
                # Repeats (repeat_interval) and an HA pair's concurrent copies are not sent again.
                repeats = await asyncio.gather(post(base, PAYLOAD), post(base, PAYLOAD))
                assert all(s == 200 and sorted(b["duplicates"]) == ["oncall", "slack"] for s, b in repeats)
                # The resolution is news.
                status, body = await post(base, resolved(PAYLOAD))
                assert status == 200 and sorted(body["delivered"]) == ["oncall", "slack"]
                # Two concurrent copies of a new notification: delivered once.
                again = copy.deepcopy(PAYLOAD)
                again["alerts"][0]["startsAt"] = "2026-12-01T00:00:05.000Z"  # the same alert, firing again later
                both = await asyncio.gather(post(base, again), post(base, again))
                assert sorted(len(b["delivered"]) for _, b in both) == [0, 2]
            # A restart re-reads the sent store: nothing is sent twice.
            async with running_notifier(settings, hooks) as base:
                status, body = await post(base, again)
                assert status == 200 and sorted(body["duplicates"]) == ["oncall", "slack"]
            assert len(receiver.accepted["/generic"]) == 3 and len(receiver.accepted["/slack"]) == 3
            assert receiver.accepted["/ledger"] == [], "a webhook for ledger alerts only"
        finally:
            await receiver.stop()

    asyncio.run(main())


def test_relay_failures_retry_later_and_dead_letters(settings: Settings) -> None:
    async def main() -> None:
        receiver = Receiver(fail_first=0)
        await receiver.start()
        hooks = [{"name": "oncall", "url": f"{receiver.url}/generic"},
                 {"name": "down", "url": f"{receiver.url}/down"},
                 {"name": "refuses", "url": f"{receiver.url}/refuse"}]
        try:
            async with running_notifier(settings, hooks, alertmanager_deliver_within_s=0.3,
                                alertmanager_token="am-secret") as base:
                assert (await post(base, PAYLOAD))[0] == 401
                for odd in ODD_VALUES:  # odd or non-ASCII Authorization: 401 with a reason, never 500
                    status, body = await raw_post(base, "/alertmanager", jsonutil.dumps(PAYLOAD),
                                                  [(b"Content-Type", b"application/json"), (b"Authorization", odd)])
                    assert (status, body.get("reason")) == (401, "unauthenticated"), (odd, status, body)
                auth = {"Authorization": "Bearer am-secret"}
                status, body = await post(base, PAYLOAD, **auth)
                # `down` still fails: 503 so Alertmanager retries; `oncall` got it, `refuses` refused for good.
                assert status == 503 and body["delivered"] == ["oncall"] and body["pending"] == ["down"]
                assert body["dead_lettered"] == ["refuses"]
                status, body = await post(base, PAYLOAD, **auth)  # Alertmanager's retry
                assert status == 503 and body["pending"] == ["down"]
                assert sorted(body["duplicates"]) == ["oncall", "refuses"], "not re-sent to those that are done"
                assert len(receiver.accepted["/generic"]) == 1
                status, body = await post(base, b'{"version": "4", "alerts": "nope"}', **auth)
                assert status == 400 and "Alertmanager v4" in body["error"]
                async with aiohttp.ClientSession() as s, s.get(f"{base}/alertmanager") as r:
                    assert (r.status, (await r.json())["reason"]) == (405, "method_not_allowed")
            letters = await dead_letters(settings, 4)
            assert sorted(d["reason"] for d in letters if d["first_at"] is None) == [
                "invalid_alertmanager_payload", "webhook_rejected"]
            # The 401s keep no body: one letter counting them all, written when the notifier stopped; the
            # wrong method too.
            assert sorted((d["reason"], d["http_status"], d["count"], d["original"]) for d in letters
                          if d["first_at"] is not None) == [("method_not_allowed", 405, 1, ""),
                                                            ("unauthenticated", 401, 1 + len(ODD_VALUES), "")]
        finally:
            await receiver.stop()

    asyncio.run(main())


def test_relay_limits_floods_and_slow_bodies(settings: Settings) -> None:
    """Per caller: a body trickling in holds its slot until the read timeout (408 body_timeout), another
    request meanwhile is 429 concurrency_limited; beyond the bucket, 429 rate_limited with Retry-After.
    Every token the bucket had is accounted for by exactly one answered request."""
    burst = 6

    async def main() -> None:
        receiver = Receiver(fail_first=0)
        await receiver.start()
        auth = {"Authorization": "Bearer am-secret"}
        try:
            async with running_notifier(settings, [{"name": "oncall", "url": f"{receiver.url}/generic"}],
                                        alertmanager_token="am-secret", alertmanager_rate_limit_per_s=0.001,
                                        alertmanager_rate_limit_burst=burst, alertmanager_max_concurrent=1,
                                        alertmanager_body_read_timeout_s=1.0) as base:
                host, port = base.removeprefix("http://").split(":")
                reader, writer = await asyncio.open_connection(host, int(port))
                writer.write(b"POST /alertmanager HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
                             b"Authorization: Bearer am-secret\r\nContent-Length: 1000\r\n\r\n{\"version\"")
                await writer.drain()
                ok = 0
                for _ in range(burst):  # until the trickling request is seen in flight (a 200 took a token)
                    status, body = await post(base, PAYLOAD, **auth)
                    if status == 429:
                        assert body["reason"] == "concurrency_limited", body
                        break
                    assert status == 200, body
                    ok += 1
                else:
                    raise AssertionError("no 429 while a request was in flight: no concurrency limit")
                head = (await reader.read(4096)).decode()
                writer.close()
                assert head.startswith("HTTP/1.1 408") and '"body_timeout"' in head, head
                for _ in range(burst + 1):
                    async with aiohttp.ClientSession() as s, \
                            s.post(f"{base}/alertmanager", data=jsonutil.dumps(PAYLOAD), headers=auth) as r:
                        if r.status == 429:
                            assert (await r.json())["reason"] == "rate_limited" and int(r.headers["Retry-After"]) >= 1
                            break
                        assert r.status == 200
                        ok += 1
                else:
                    raise AssertionError("never 429 rate_limited: no rate limit")
                assert ok + 1 == burst, "each token the bucket had went to exactly one request"
                # Another caller (no token: its own bucket, by address) is not limited by the first one's flood.
                assert (await post(base, PAYLOAD))[0] == 401
            assert len(receiver.accepted["/generic"]) == 1, "repeats of one notification are sent once"
            # Every refusal is in a dead letter: bodiless, one per caller, reason and window, with its count.
            letters = await dead_letters(settings, 4)
            assert sorted((d["reason"], d["http_status"], d["count"], d["caller"]) for d in letters) == [
                ("body_timeout", 408, 1, "127.0.0.1"), ("concurrency_limited", 429, 1, "127.0.0.1"),
                ("rate_limited", 429, 1, "127.0.0.1"), ("unauthenticated", 401, 1, "127.0.0.1")]
        finally:
            await receiver.stop()

    asyncio.run(main())
