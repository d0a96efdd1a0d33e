"""State size metrics (stream_processors/state_size.py) and the compact fact store
(stream_processors/correlate/factstore.py), on the real stage logic (LocalPipeline)."""

from __future__ import annotations

import orjson
from prometheus_client import REGISTRY

from gateledger.clock import ManualClock
from benchmarks.processors import T0, raw_messages
from stream_processors.correlate import factstore
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


def test_facts_are_held_encoded_and_read_back_exactly() -> None:
    pl = _pipeline(30)
    states = [v for c in pl.correlate for k, v in c.state.kv.items() if k.startswith("i|")]
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
