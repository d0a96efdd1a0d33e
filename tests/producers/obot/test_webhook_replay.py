"""A signed webhook delivery re-sent byte for byte within the replay window is answered with the first
verdict and recorded once (real app, real broker); after the window it is a new delivery."""

from __future__ import annotations

import asyncio

from gateledger import jsonutil
from gateledger.settings import Settings
from gateledger.topics import Topic
from producers.obot.replay import ReplayWindow, Seen
from producers.ingest.settings import IngestSettings
from producers.obot.webhook import Decision, WebhookDelivery
from tests import samples
from tests.producers.ingestutil import ingest_client, sign
from tests.producers.kafkaread import read_topic

SECRET = "whsec-replay"


class BlockCreateIssue:
    name = "block-create-issue"

    async def decide(self, delivery: WebhookDelivery) -> Decision:
        if (delivery.message.get("params") or {}).get("name") == "create_issue":
            return Decision.reject("blocked", self.name, 403)
        return Decision(True, policy=self.name)


def test_replayed_signed_deliveries_are_recognised_and_recorded_once(settings: Settings) -> None:
    async def main() -> None:
        ingest = IngestSettings(webhook_secret=SECRET, default_tenant="acme")
        async with ingest_client(settings, ingest, decision_policy=BlockCreateIssue()) as http:
            ok = jsonutil.dumps(samples.webhook_message(id=1))
            blocked = jsonutil.dumps(samples.webhook_message(id=2, params={"name": "create_issue", "arguments": {}}))
            answers = []
            for body in (ok, blocked, ok, ok, blocked):
                # The replays copy the signature in either form Obot has used.
                for prefix in (True, False):
                    r = await http.post("/v1/obot/webhook", data=body,
                                        headers={"X-Obot-Signature-256": sign(SECRET, body, prefix)})
                    answers.append((body is ok, r.status, (await r.json()).get("replay", False)))
            assert answers[0] == (True, 200, False) and answers[2] == (False, 403, False)
            assert all(replay for _, _, replay in answers[1:2] + answers[3:])
            assert {(o, s) for o, s, _ in answers} == {(True, 200), (False, 403)}  # the first verdict, always
            # A different message, and the same one named by Idempotency-Key, are deliveries of their own.
            other = jsonutil.dumps(samples.webhook_message(id=3))
            r = await http.post("/v1/obot/webhook", data=other, headers={"X-Obot-Signature-256": sign(SECRET, other)})
            assert r.status == 200 and "replay" not in await r.json()
        events = await read_topic(settings, Topic.RAW_OBOT_WEBHOOK, until=lambda got: len(got) >= 3)
        assert sorted(str(e["data"]["id"]) for e in events) == ["1", "2", "3"], events

    asyncio.run(main())


def test_window_expires_and_delivery_ids_are_stable_within_it() -> None:
    now = [10_000.0]
    w = ReplayWindow(300, clock=lambda: now[0], max_entries=3)
    k = ReplayWindow.key("default", b"{}")
    assert k != ReplayWindow.key("acme", b"{}")  # per filter
    first = w.delivery_id(k)
    now[0] += 10
    assert w.delivery_id(k) == first  # another worker, same window: the same event id
    w.remember(k, Seen(200, {"accept": True}, first))
    now[0] += 299
    assert w.get(k) is not None
    now[0] += 2
    assert w.get(k) is None  # beyond the window: a new delivery
    for i in range(5):
        w.remember(ReplayWindow.key("f", bytes([i])), Seen(200, {}, "x"))
    assert w.get(ReplayWindow.key("f", b"\x00")) is None and w.get(ReplayWindow.key("f", b"\x04")) is not None
    assert ReplayWindow(0).get(k) is None
