"""The correlate stage for one partition of the facts topic: facts -> interactions (+ bypass findings).

Facts arrive keyed by root key, so one interaction's facts meet here in any order. An interaction
is emitted once it is complete and nothing new arrived for ``interaction_settle_s`` of event time,
or ``interaction_timeout_s`` after its first event otherwise. After that it stays for
``retention_s``: any new or updated fact re-emits it at once with a higher version.

State keys (this partition's slice of the stage's faust table):
  ``w``          event-time watermark of the facts partition
  ``i|<root>``   one interaction: its facts and emission bookkeeping
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
from stream_processors.common.watermark import Watermark
from stream_processors.correlate import interaction
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
        self.timers = TimerHeap()
        self.open = 0  # interactions not yet emitted
        self._timeout = secs(settings.interaction_timeout_s)
        self._settle = secs(settings.interaction_settle_s)
        self._retention = secs(settings.retention_s)
        st = {}
        self.state.kv["w"] = st
        self.wm = Watermark(st, secs(settings.lateness_s), secs(settings.idle_advance_s), lambda: to_us(clock()))

    def load(self, items: list[tuple[str, Any]]) -> None:
        """Rebuild from persisted state."""
        kv = self.state.kv
        for key, value in items:
            if key == "w":
                self.wm.state.update(value)
                kv["w"] = self.wm.state
                continue
            kv[key] = value
            if key.startswith("i|"):
                if value.get("due") is not None:
                    self.timers.push(value["due"], key)
                if not value.get("em"):
                    self.open += 1

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
            self.process_fact(fact)
        return len(facts)

    def process_fact(self, fact: Any) -> None:
        """One fact."""
        try:
            root = fact["root"]
            t = int(fact["t"])
            key = fact["key"]
            v = int(fact["v"])
        except (KeyError, TypeError, ValueError):
            _DEAD.labels(stage=STAGE, reason="bad_fact").inc()
            return
        if self.wm.observe(t):
            self._on_watermark()
        skey = f"i|{root}"
        st = self.state.get(skey)
        if st is None:
            st = {"root": root, "f": {}, "em": 0, "due": None, "first": t, "last": t}
            self.open += 1
        old = st["f"].get(key)
        if old is not None and old["v"] >= v:
            _DUPS.inc()
            return
        st["f"][key] = fact
        st["first"] = min(st["first"], t)
        st["last"] = max(st["last"], t)
        if st["em"]:
            self._emit(skey, st)  # a late change to an emitted interaction: re-emit now
        else:
            self._schedule(skey, st)
        self.state.put(skey, st)
        nxt = self.timers.next_due()
        if nxt is not None and nxt <= self.wm.value:
            self._on_watermark()  # already due (a late fact): now, not at the next watermark move

    def tick(self) -> None:
        """Let an idle partition's watermark follow the clock."""
        if self.wm.idle_tick():
            self._on_watermark()

    def _schedule(self, skey: str, st: dict[str, Any]) -> None:
        facts = st["f"].values()
        if interaction.is_complete(facts):
            due = st["last"] + self._settle
        else:
            due = st["first"] + self._timeout
        if due != st["due"]:
            st["due"] = due
            self.timers.push(due, skey)

    def _emit(self, skey: str, st: dict[str, Any]) -> None:
        now = self.clock()
        row, found = interaction.build(st["root"], st["f"].values(), now=now, timeout_us=self._timeout)
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
            self.timers.push(due, skey)

    def _on_watermark(self) -> None:
        wm = self.wm.value
        for due, skey in self.timers.pop_due(wm):
            st = self.state.get(skey)
            if st is None or st["due"] != due:
                continue
            if not st["em"]:
                self._emit(skey, st)
                self.state.put(skey, st)
            elif wm >= st["last"] + self._retention:
                self.state.delete(skey)
        self.state.touch("w", WATERMARK)
        telemetry.WATERMARK.labels(stage=STAGE, partition=str(self.partition)).set(wm / 1e6)
