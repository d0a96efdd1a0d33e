"""The normalize stage's compact state (stream_processors/normalize/records.py, common/dedup.py) and
the upgrade from the older layout (dicts, lists of event ids) that a running worker left in its
changelog."""

from __future__ import annotations

from pathlib import Path

import orjson

from gateledger.contracts.envelope import Envelope
from stream_processors.common.dedup import DedupWindow
from stream_processors.common.partitioning import partition_for
from stream_processors.local import LocalPipeline
from stream_processors.normalize import records
from stream_processors.normalize.keys import NOT_RAISED, RAISED
from tests.stream_processors.normalize import upgrade_traffic as up

FIXTURE = Path(__file__).with_name("state_before_compact.json")
WALL = {"emitted_at", "detected_at"}


def _rows(pl: LocalPipeline) -> list[tuple[str, dict]]:
    out = [(e.topic, {f: v for f, v in orjson.loads(e.value).items() if f not in WALL}) for e in pl.outputs]
    pl.outputs.clear()
    return out


def _close(pl: LocalPipeline) -> None:
    pl.clock.advance(seconds=3 * 86400)  # type: ignore[attr-defined]
    for _ in range(3):
        pl.tick()
        pl.clock.advance(seconds=2)  # type: ignore[attr-defined]


def _upgraded() -> LocalPipeline:
    """A pipeline of today's code started on the state the older layout left at the cut."""
    state = orjson.loads(FIXTURE.read_bytes())
    pl = up.pipeline()
    pl.clock.advance(seconds=up.PAUSE_S)  # type: ignore[attr-defined]
    for part, items in zip(pl.normalize, state["normalize"], strict=True):
        part.load([(k, v) for k, v in items])
    for cpart, items in zip(pl.correlate, state["correlate"], strict=True):
        cpart.load([(k, v) for k, v in items])
    pl.offsets = {(t, p): o for t, p, o in state["offsets"]}
    return pl


def test_a_worker_upgraded_mid_stream_continues_from_the_older_layout_as_from_its_own() -> None:
    older = orjson.loads(FIXTURE.read_bytes())["normalize"]
    assert any(isinstance(v, dict) and isinstance(v.get("request"), str) for p in older for k, v in p), \
        "the fixture should hold a lone half still waiting for its other half"
    assert any(k[:2] == "c|" and v["aud"] is None for p in older for k, v in p)
    upgraded = _upgraded()
    # Every entry of the older layout is read and rewritten in this one (written out at the next flush).
    for part in upgraded.normalize:
        assert all(isinstance(v, str) for k, v in part.state.kv.items() if k[:2] in ("m|", "c|", "d|"))
    rewritten = sum(p.state.pending_writes() for p in upgraded.normalize)
    assert rewritten == sum(1 for p in older for k, _ in p if k[:2] in ("m|", "c|", "d|"))
    # The duplicates after the cut are known from the older layout's chunks of event ids.
    msgs, cut = up.messages()
    dups = msgs[len(msgs) - 8:]
    for _topic, key, value in dups:
        env = Envelope.model_validate_json(value)
        part = upgraded.normalize[partition_for(key, len(upgraded.normalize))]
        assert part.dedup.seen(env.tenant, f"{env.tenant}|{env.id}")

    continued = up.pipeline()  # today's code from the start
    up.first_half(continued)
    _rows(continued)
    up.second_half(continued)
    up.second_half(upgraded)
    after_cut = _rows(continued)
    assert after_cut and _rows(upgraded) == after_cut
    _close(continued)
    _close(upgraded)
    closing = _rows(continued)
    assert closing and _rows(upgraded) == closing
    assert all(not p.state.kv.keys() - {k for k in p.state.kv if k[:2] in ("w|", "d|")}
               for p in upgraded.normalize), "everything but watermarks and dedup expired after retention"


def test_a_replay_of_a_half_the_older_layout_folded_in_is_still_recognised() -> None:
    # A crash between the state and dedup writes: the exchange has the half, the dedup window not.
    older = orjson.loads(FIXTURE.read_bytes())["normalize"]
    folded = {i for p in older for k, v in p if k[:2] == "m|" for i in v["ids"]}
    msgs, cut = up.messages()
    upgraded = _upgraded()
    replayed = 0
    for topic, key, value in msgs[:cut]:
        env = Envelope.model_validate_json(value)
        if env.id not in folded:
            continue
        part = upgraded.normalize[partition_for(key, len(upgraded.normalize))]
        part.dedup = DedupWindow(part.dedup.window, part.dedup.bucket)
        part.out.emits.clear()
        part.process(topic, 10**6, value)
        assert part.out.emits == [], env.id
        replayed += 1
    assert replayed >= 10


def test_an_exchange_round_trips_in_both_forms_and_keeps_an_odd_tenant() -> None:
    key = "m|acme|obot/default/mcp|srv|sess-1|7"
    waiting = {"g": 1, "request": '{"id":"e1"}', "response": None, "ids": [records.id_digest("e1")],
               "open": True, "last": 10, "rcv": 15, "tn": "acme", "src": "obot/default/mcp|obot.mcp.call",
               "due": 70, "t": None}
    assert records.decode_exchange(key, records.encode_exchange(key, waiting)) == waiting
    merged = waiting | {"request": True, "response": True, "open": False, "ids": ["a", "b"], "due": 99,
                        "t": 12}
    text = records.encode_exchange(key, merged)
    assert text.startswith("M,")
    # What a merged exchange no longer needs (receive time, the lone half's time) is not kept.
    assert records.decode_exchange(key, text) == merged | {"rcv": 10, "t": None}
    odd = "m|a|b|obot/default/mcp|srv|sess-1|7"  # tenant "a|b": the key alone cannot say it
    st = merged | {"tn": "a|b"}
    assert records.decode_exchange(odd, records.encode_exchange(odd, st)) == st | {"rcv": 10, "t": None}


def test_a_context_keeps_everything_until_settled_then_only_what_is_still_read() -> None:
    pre = {"eid": "p1", "t": 100, "exp": 400, "ok": True, "root": "acme|r:1", "rid": "1", "tid": None,
           "cid": "c", "uid": None}
    open_ = {"pre": pre, "aud": None, "held": None, "una": RAISED, "orph": NOT_RAISED, "last": 100,
             "tn": "acme", "due": 500,
             "ent": {"eid": "e", "t": 90, "cid": "c", "m": "gpt", "u": 3, "pc": 1, "env": None, "rcv": 95}}
    assert records.decode_context(records.encode_context(open_)) == open_
    held = open_ | {"pre": None, "aud": {"eid": "a1", "t": 120, "root": None},
                    "held": {"env": "{}", "rcv": 130}}
    assert records.decode_context(records.encode_context(held)) == held
    late_audit = open_ | {"aud": {"eid": "a1", "t": 450, "root": "acme|r:1"}, "una": NOT_RAISED}
    assert not records.settled(late_audit)  # its unaudited finding is still to be raised
    assert records.decode_context(records.encode_context(late_audit)) == late_audit
    done = open_ | {"aud": {"eid": "a1", "t": 300, "root": "acme|r:1"}}
    assert records.settled(done)
    text = records.encode_context(done)
    assert text == "S,100,400"
    back = records.decode_context(text)
    assert back["pre"] is not None and back["aud"] is not None and back["held"] is None
    assert (back["last"], back["due"]) == (100, 500) and records.settled(back)
    assert records.decode_context(records.encode_context(done | {"tn": "a|b"}))["tn"] == "a|b"
