"""The correlate stage for one partition of the facts topic: facts -> interactions (+ bypass findings).

Facts arrive keyed by root key, so one interaction's facts meet here in any order. An interaction
is emitted as soon as it is complete (at the end of the facts message that completed it), or once
its tenant's watermark passes ``interaction_timeout_s`` after its first event otherwise. After that
it stays for ``retention_s``: any new or updated fact re-emits it at once with a higher version.

State keys (this partition's slice of the stage's faust table):
  ``w|<tenant>`` event-time watermark of one tenant, with each source's newest fact
  ``i|<root>``   one interaction (the root key starts with the tenant): open, a dict of its facts (each
                 one encoded JSON string, correlate/factstore.py) and bookkeeping; once emitted, that
                 dict packed into one compressed string until retention (correlate/packing.py)
"""

from __future__ import annotations

from typing import Any

import orjson

from gateledger.clock import Clock
from gateledger.contracts.events import Finding
from stream_processors import telemetry
from stream_processors.common.emit import Batch
from stream_processors.common.partition_state import WATERMARK, PartitionState
from stream_processors.common.timers import TimerHeap
from stream_processors.common.timeutil import secs, to_us
from stream_processors.common.watermark import TenantWatermarks
from stream_processors.correlate import factstore, interaction, packing
from stream_processors.settings import ProcessorSettings

STAGE = "correlate"
_DUPS = telemetry.DUPLICATES.labels(stage=STAGE)
_DEAD = telemetry.DEAD_LETTERS


class CorrelatePartition:
    """Interaction assembly for one partition of the facts topic."""

    def __init__(self, partition: int, settings: ProcessorSettings, clock: Clock) -> None:
        self.partition = partition
        self.s = settings
        self.clock = clock
        self.state = PartitionState(partition)
        self.out = Batch()
        self.timers: dict[str, TimerHeap] = {}  # per tenant, on the tenant's watermark
        self.open = 0  # interactions not yet emitted
        self._timeout = secs(settings.interaction_timeout_s)
        self._retention = secs(settings.retention_s)
        self.wms = TenantWatermarks(self.state, lateness=secs(settings.lateness_s),
                                    idle_advance=secs(settings.idle_advance_s),
                                    source_idle=secs(settings.source_idle_s), clock_us=lambda: to_us(clock()))
        self._touched: dict[str, None] = {}  # interactions changed by the facts message being processed

    def load(self, items: list[tuple[str, Any]]) -> None:
        """Rebuild from persisted state."""
        kv = self.state.kv
        for key, value in items:
            kv[key] = value
            if key.startswith("w"):
                if TenantWatermarks.is_current(key, value):
                    self.wms.load(key, value)
                else:
                    self.state.delete(key, WATERMARK)  # the per-partition watermark of an older version
            elif key.startswith("i|"):
                if packing.is_packed(value):
                    due, _, _, odd_tenant = packing.header(value)
                    st = packing.unpack(value, key[2:]) if odd_tenant else {"root": key[2:]}
                    self._timer(_tenant_of(st)).push(due, key)
                    continue
                if value.get("due") is not None:
                    self._timer(_tenant_of(value)).push(value["due"], key)
                if not value.get("em"):
                    self.open += 1

    def _timer(self, tenant: str) -> TimerHeap:
        heap = self.timers.get(tenant)
        if heap is None:
            heap = self.timers[tenant] = TimerHeap()
        return heap

    def flush(self, suffix: str = "") -> list[tuple[str, Any]]:
        return self.state.take_writes()

    def entries(self) -> int:
        return len(self.state.kv)

    # -- processing -------------------------------------------------------------------------------

    def process(self, value: bytes | None) -> int:
        """One message of the facts topic: a JSON array of facts (in the order they were made)."""
        try:
            facts = orjson.loads(value or b"")
        except orjson.JSONDecodeError:
            facts = None
        if not isinstance(facts, list):
            # Facts are written by the normalize stage only; a bad one is a bug, counted and skipped
            # (its source event is in raw_events and its typed row in its own table).
            _DEAD.labels(stage=STAGE, reason="bad_fact").inc()
            return 1
        for fact in facts:
            self.process_fact(fact, defer=True)
        self.emit_touched()
        return len(facts)

    def process_fact(self, fact: Any, defer: bool = False) -> None:
        """One fact; with ``defer``, (re-)emission waits for ``emit_touched`` (once per interaction)."""
        try:
            root = fact["root"]
            t = int(fact["t"])
            key = fact["key"]
            v = int(fact["v"])
        except (KeyError, TypeError, ValueError):
            _DEAD.labels(stage=STAGE, reason="bad_fact").inc()
            return
        tenant = str(fact.get("tenant") or root.split("|", 1)[0])
        if self.wms.observe(tenant, str(fact.get("src") or "facts"), t):
            self._on_watermark(tenant)
        skey = f"i|{root}"
        st = self._get(skey)
        if st is None:
            st = {"root": root, "tn": tenant, "f": {}, "em": 0, "due": None, "first": t, "last": t}
            self.open += 1
        old = factstore.version(st, key)
        if old is not None and old >= v:
            _DUPS.inc()
            return
        factstore.put(st, key, fact)
        st["first"] = min(st["first"], t)
        st["last"] = max(st["last"], t)
        self.state.put(skey, st)
        self._touched[skey] = None
        if not defer:
            self.emit_touched()
        heap = self.timers.get(tenant)
        nxt = heap.next_due() if heap is not None else None
        if nxt is not None and nxt <= self.wms.value(tenant):
            self._on_watermark(tenant)  # already due (a late fact): now, not at the next watermark move

    def emit_touched(self) -> None:
        """Emit what the facts just processed completed or changed; schedule the timeout of the rest."""
        overdue: dict[str, None] = {}
        for skey in self._touched:
            st = self._get(skey)
            if st is None:
                continue
            # Emitted before: a late change re-emits at once. Complete: nothing more is expected.
            # The facts are decoded once here for both the check and the row.
            facts = factstore.facts(st)
            if st["em"] or interaction.is_complete(facts):
                self._emit(skey, st, facts)
            else:
                due = st["first"] + self._timeout
                if due != st["due"]:
                    st["due"] = due
                    tenant = _tenant_of(st)
                    self._timer(tenant).push(due, skey)
                    if due <= self.wms.value(tenant):
                        # A later fact of the same message moved the watermark past it before its
                        # timer existed: no further move may come (the traffic's last message).
                        overdue[tenant] = None
            self._put(skey, st)
        self._touched.clear()
        for tenant in overdue:
            self._on_watermark(tenant)

    def tick(self) -> None:
        """Let tenants whose sources went quiet move on with the clock."""
        for tenant in self.wms.tick():
            self._on_watermark(tenant)
        for tenant, source in self.wms.prune(STAGE, self._retention, lambda t: bool(self.timers.get(t))):
            if source is None:
                self.timers.pop(tenant, None)
        self.wms.report(STAGE)
        telemetry.WATERMARK.labels(stage=STAGE, partition=str(self.partition)).set(self.wms.slowest() / 1e6)

    def _emit(self, skey: str, st: dict[str, Any], facts: list[Any] | None = None) -> None:
        now = self.clock()
        if facts is None:
            facts = factstore.facts(st)
        row, found = interaction.build(st["root"], facts, now=now, timeout_us=self._timeout)
        end = to_us(row.end_time)
        self.out.row(row, end)
        current = {}
        for f in found:
            self.out.row(f, end)
            current[f.id] = f.model_dump(mode="json")
        for fid, old in (st.get("bf") or {}).items():
            if fid not in current:
                # A late event (e.g. an approving pre-check) shows the block did not apply after all.
                gone = Finding.model_validate(old | {"version": row.version, "retracted": True, "detected_at": now})
                self.out.row(gone, end)
        if current or st.get("bf"):
            st["bf"] = current
        if not st["em"]:
            self.open -= 1
        st["em"] = row.version
        # Kept for late updates until retention after its newest event.
        due = st["last"] + self._retention
        if due != st["due"]:
            st["due"] = due
            self._timer(_tenant_of(st)).push(due, skey)

    def _on_watermark(self, tenant: str) -> None:
        wm = self.wms.value(tenant)
        heap = self.timers.get(tenant)
        for due, skey in heap.pop_due(wm) if heap is not None else ():
            value = self.state.get(skey)
            if value is None:
                continue
            if packing.is_packed(value):
                # Emitted and packed: expiry is read from the header, nothing is unpacked.
                st_due, last, _, _ = packing.header(value)
                if st_due == due and wm >= last + self._retention:
                    self.state.delete(skey)
                continue
            st = value
            if st["due"] != due:
                continue
            if not st["em"]:
                self._emit(skey, st)
                self._put(skey, st)
            elif wm >= st["last"] + self._retention:
                self.state.delete(skey)

    def _get(self, skey: str) -> dict[str, Any] | None:
        """An interaction's state as a dict (a packed one unpacked: a copy, stored back only if it changes)."""
        value = self.state.get(skey)
        if value is not None and packing.is_packed(value):
            return packing.unpack(value, skey[2:])
        return value

    def _put(self, skey: str, st: dict[str, Any]) -> None:
        """Store an interaction's state: packed once emitted (only a late fact reads it again)."""
        self.state.put(skey, packing.pack(st, st["root"].split("|", 1)[0]) if st["em"] else st)


def _tenant_of(st: dict[str, Any]) -> str:
    """An interaction's tenant (its root key starts with it)."""
    return st.get("tn") or st["root"].split("|", 1)[0]
