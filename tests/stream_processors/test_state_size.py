"""State size metrics (stream_processors/state_size.py), the compact fact store
(stream_processors/correlate/factstore.py) and the packed form of emitted interactions
(stream_processors/correlate/packing.py), on the real stage logic (LocalPipeline)."""

from __future__ import annotations

import orjson
from prometheus_client import REGISTRY

from gateledger.clock import ManualClock
from benchmarks.processors import T0, raw_messages
from stream_processors.correlate import factstore, packing
from stream_processors.correlate.stage import CorrelatePartition
from stream_processors.local import LocalPipeline
from stream_processors.settings import ProcessorSettings
from stream_processors.state_size import NO_TENANT, StateSizer, memory_limit_bytes, tenant_of


def _pipeline(n: int = 60) -> LocalPipeline:
    pl = LocalPipeline(settings=ProcessorSettings(idle_advance_s=0), clock=ManualClock(T0))
    pl.feed(raw_messages(n, seed=3))
    return pl


def _store(pl: LocalPipeline) -> dict[str, object]:
    """The correlate table as the faust worker holds it: ``<partition>|<key>`` -> value."""
    return {f"{c.partition}|{k}": v for c in pl.correlate for k, v in c.state.kv.items()}


def _gauge(name: str, **labels: str) -> float | None:
    return REGISTRY.get_sample_value(name, labels)


def test_a_pass_in_slices_counts_every_entry_once_per_tenant() -> None:
    store = _store(_pipeline())
    want_bytes: dict[str, int] = {}
    want_entries: dict[str, int] = {}
    for k, v in store.items():
        t = tenant_of(k)
        want_entries[t] = want_entries.get(t, 0) + 1
        want_bytes[t] = want_bytes.get(t, 0) + len(k) + len(orjson.dumps(v))
    assert len(want_entries) >= 2 and NO_TENANT not in want_entries, want_entries
    sizer = StateSizer("test-corr", budget=7)
    steps = 1
    while not sizer.step(store):
        # A part of a pass is never published: it would read as the state shrinking.
        assert _gauge("gateledger_processor_state_bytes", table="test-corr") is None
        steps += 1
    assert steps == -(-len(store) // 7)  # slices of 7, the gauges set only once the pass is whole
    entries, size = sizer.totals()
    assert entries == want_entries and size == want_bytes
    assert _gauge("gateledger_processor_state_bytes", table="test-corr") == sum(want_bytes.values())
    for t in want_entries:
        assert _gauge("gateledger_processor_tenant_state_entries", table="test-corr", tenant=t) == want_entries[t]
        assert _gauge("gateledger_processor_tenant_state_bytes", table="test-corr", tenant=t) == want_bytes[t]


def test_entries_deleted_mid_pass_are_skipped_and_a_gone_tenant_loses_its_series() -> None:
    store = {"0|i|acme|r:1": {"x": 1}, "0|i|acme|r:2": {"x": 2}, "1|i|globex|r:3": {"x": 3}, "1|w": {"n": 1}}
    sizer = StateSizer("test-del", budget=2)
    assert not sizer.step(store)
    del store["1|i|globex|r:3"]  # expired while the pass was under way
    assert sizer.step(store)
    assert sizer.totals()[0] == {"acme": 2, NO_TENANT: 1}
    assert _gauge("gateledger_processor_tenant_state_entries", table="test-del", tenant="globex") is None
    store["1|i|globex|r:4"] = {"x": 4}
    while not sizer.step(store):
        pass
    assert _gauge("gateledger_processor_tenant_state_entries", table="test-del", tenant="globex") == 1
    del store["1|i|globex|r:4"]
    while not sizer.step(store):
        pass
    assert _gauge("gateledger_processor_tenant_state_entries", table="test-del", tenant="globex") is None
    assert _gauge("gateledger_processor_tenant_state_bytes", table="test-del", tenant="globex") is None


def test_memory_limit_is_known() -> None:
    assert memory_limit_bytes() > 64 * 2**20


def _interactions(pl: LocalPipeline) -> dict[str, object]:
    return {k: v for c in pl.correlate for k, v in c.state.kv.items() if k.startswith("i|")}


def test_facts_are_held_encoded_and_read_back_exactly() -> None:
    pl = _pipeline(30)
    states = [packing.unpack(v, k[2:]) if packing.is_packed(v) else v for k, v in _interactions(pl).items()]
    assert states
    for st in states:
        assert all(isinstance(v, str) for v in st["f"].values()), "a fact held as an object graph"
        for key, stored in st["f"].items():
            assert '"root"' not in stored  # the interaction's own root, not repeated per fact
            fact = factstore.decode(stored, st["root"], st["tn"])
            assert fact["key"] == key and fact["root"] == st["root"] and fact["tenant"] == st["tn"]
            assert factstore.encode(fact, st["root"], st["tn"]) == stored
            assert factstore.version(st, key) == fact["v"]


def test_state_written_by_the_earlier_layout_is_read() -> None:
    fact = {"kind": "llm", "key": "k1", "v": 3, "ids": ["e1"], "tenant": "acme", "root": "acme|r:1", "t": 1,
            "te": 2, "rcv": 3, "src": "axonflow|llm"}
    st = {"root": "acme|r:1", "tn": "acme", "f": {"k1": dict(fact)}, "em": 0, "due": None, "first": 1, "last": 1}
    assert factstore.facts(st) == [fact] and factstore.version(st, "k1") == 3
    factstore.put(st, "k1", fact | {"v": 4})
    assert isinstance(st["f"]["k1"], str) and factstore.facts(st) == [fact | {"v": 4}]


def test_emitted_interactions_are_packed_and_unpack_exactly() -> None:
    pl = _pipeline(60)
    held = _interactions(pl)
    packed = {k: v for k, v in held.items() if packing.is_packed(v)}
    # Every complete interaction was emitted, so packed; what is still a dict is open (not emitted).
    assert packed and all(not v["em"] for v in held.values() if not packing.is_packed(v))
    for skey, value in packed.items():
        st = packing.unpack(value, skey[2:])
        assert st["root"] == skey[2:] and st["em"] and st["due"] == st["last"] + pl.correlate[0]._retention
        assert all(isinstance(f, str) for f in st["f"].values())
        assert packing.header(value) == (st["due"], st["last"], st["em"], False)
        assert packing.pack(st, st["tn"]) == value
        assert value.isascii() and orjson.loads(orjson.dumps(value)) == value  # the changelog's JSON


def test_a_tenant_the_root_key_does_not_give_back_is_kept_and_so_is_every_field() -> None:
    # "bf": the bypass findings emitted last, which a late fact may have to retract.
    st = {"root": "a|b|r:1", "tn": "a|b", "f": {"k": '{"kind":"gone"}'}, "em": 2, "due": 9, "first": 1, "last": 3,
          "bf": {"f1": {"id": "f1", "version": 2, "what": "tool ran after a blocked pre-check"}}}
    value = packing.pack(st, "a")
    assert packing.header(value) == (9, 3, 2, True)
    assert packing.unpack(value, "a|b|r:1") == st


def _late(fact: dict[str, object]) -> dict[str, object]:
    return fact | {"v": int(fact["v"]) + 1, "ids": [*fact["ids"], "late-event"]}  # type: ignore[list-item]


def test_a_late_fact_on_a_packed_interaction_emits_what_the_unpacked_one_would() -> None:
    pl = _pipeline(20)
    part = next(c for c in pl.correlate if any(packing.is_packed(v) for v in c.state.kv.values()))
    skey, value = next((k, v) for k, v in part.state.kv.items() if packing.is_packed(v))
    st = packing.unpack(value, skey[2:])
    fact = factstore.decode(next(iter(st["f"].values())), st["root"], st["tn"])
    # The same partition rebuilt with the interaction as the earlier layout held it (a dict).
    twin = CorrelatePartition(part.partition, part.s, part.clock)
    twin.load([(k, orjson.loads(orjson.dumps(st)) if k == skey else v) for k, v in part.state.kv.items()])
    rows = []
    for logic in (part, twin):
        logic.state.take_writes()
        logic.process(orjson.dumps([_late(fact)]))
        emitted = [e for e in logic.out.emits if e.topic == "interactions"]
        assert len(emitted) == 1
        rows.append(orjson.loads(emitted[0].value))
        logic.out.emits.clear()
        (written,) = [v for k, v in logic.state.take_writes() if k == skey]
        assert packing.is_packed(written) and "late-event" in str(packing.unpack(written, skey[2:]))
    assert rows[0]["version"] == rows[1]["version"] == sum(
        int(factstore.decode(f, st["root"], st["tn"])["v"]) for f in st["f"].values()) + 1
    assert rows[0] == rows[1]
    # A duplicate (same version again) changes nothing and writes nothing.
    part.process(orjson.dumps([_late(fact)]))
    assert not part.out.emits and not part.state.take_writes()


def test_packed_interactions_expire_after_a_restart_without_being_unpacked() -> None:
    pl = _pipeline(20)
    part = next(c for c in pl.correlate if any(packing.is_packed(v) for v in c.state.kv.values()))
    restored = CorrelatePartition(part.partition, part.s, part.clock)
    restored.load([(k, orjson.loads(orjson.dumps(v))) for k, v in part.state.kv.items()])  # via the changelog
    packed = [k for k, v in restored.state.kv.items() if packing.is_packed(v)]
    assert packed and restored.open == part.open
    latest = max(packing.header(restored.state.kv[k])[0] for k in packed)
    tenants = {k[2:].split("|", 1)[0] for k in packed}
    later = latest + 60_000_000
    for tenant in tenants:
        # Every source of the tenant past every retention: its watermark moves, each one is deleted.
        restored.process(orjson.dumps([
            {"root": f"{tenant}|r:after", "tenant": tenant, "kind": "llm", "key": f"after-{src}", "v": 1,
             "ids": ["x"], "t": later, "te": later, "rcv": later, "src": src}
            for src in restored.state.kv[f"w|{tenant}"]["s"]]))
    assert not [k for k in restored.state.kv if k in packed]
