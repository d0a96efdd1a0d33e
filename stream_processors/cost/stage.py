"""The cost stage for one partition of ``llm.calls`` + ``mcp.calls``: calls -> ``CostEntry`` rows.

Every LLM call and every priced MCP ``tools/call`` gets a cost row from the price catalog
(``gateledger.money.cost``); an LLM call the catalog cannot price gets a row flagged ``unpriced``
and an ``unpriced_model`` finding, never a silent zero. The row id is
``stable_id("cost", kind, call id)``; its version is ``call version << 16`` (the low 16 bits are
restatement rounds, see ``gateledger.money.cost``).

Newer versions of a call (an AxonFlow audit re-emitted enriched once its pre-check joined, an Obot
exchange completed by its late half) reach this partition after the older ones (the call topics
are keyed by row id). A new version gives a new cost row only when the row would say something
different: amounts, tokens, model, pricing, or attribution (user, team, client, server, tool,
interaction) — everything except ``version``, ``computed_at`` and ``price_version``. So an
enrichment that only adds a trace id does not, one that names the user (which user budgets count)
does.

State keys (this partition's slice of the stage's faust table):
  ``w``          event-time watermark of the partition (both call topics)
  ``r|<cost id>`` ``[call version, content digest, event time us]`` of the last call version seen;
                 forgotten ``retention_s`` of event time after the call (newer versions of a call
                 come from the processors' own state, which keeps a call updatable that long)
"""

from __future__ import annotations

import hashlib
from collections import defaultdict
from typing import Any

import orjson
from pydantic import ValidationError

from gateledger.clock import Clock
from gateledger.contracts.events import CostEntry, CostKind, LlmCall, McpCall
from gateledger.deadletter import make_dead_letter
from gateledger.masking import Masker
from gateledger.money.cost import cost_row_id, cost_version, llm_cost, tool_cost
from stream_processors import telemetry
from stream_processors.common.emit import Batch
from stream_processors.common.money_files import MoneyFiles
from stream_processors.common.partition_state import WATERMARK, PartitionState
from stream_processors.common.timeutil import clock_us, expiry_bucket_us, secs, to_us
from stream_processors.common.watermark import Watermark
from stream_processors.facts import interaction_id, root_key
from stream_processors.settings import ProcessorSettings

STAGE = "cost"
LLM, MCP = "llm", "mcp"
# Fields that do not make a cost row different (wall clock, the row's own version, and the catalog
# version alone: a catalog change with the same amounts is not a new cost).
_NOT_CONTENT = {"version", "computed_at", "price_version"}

_DUPS = telemetry.DUPLICATES.labels(stage=STAGE)
_UNCHANGED = telemetry.SKIPPED.labels(stage=STAGE, reason="cost_unchanged")
_FREE = telemetry.SKIPPED.labels(stage=STAGE, reason="tool_not_priced")


def content_digest(row: CostEntry) -> str:
    """Digest of what a cost row says (without version, wall clock and catalog version)."""
    data = row.model_dump(mode="json", exclude=_NOT_CONTENT)
    return hashlib.blake2b(orjson.dumps(data, option=orjson.OPT_SORT_KEYS), digest_size=12).hexdigest()


def llm_interaction(call: LlmCall) -> str:
    """The interaction an LLM call belongs to (the correlate stage's root-key rule)."""
    return interaction_id(root_key(call.tenant, request_id=call.request_id, trace_id=call.trace_id,
                                   context_id=call.context_id, fallback=call.id))


def mcp_interaction(call: McpCall) -> str:
    """The interaction an MCP call belongs to (the correlate stage's root-key rule)."""
    exchange = None
    if call.session_id and call.jsonrpc_id:
        exchange = f"{call.mcp_server_id or ''}|{call.session_id}|{call.jsonrpc_id}"
    return interaction_id(root_key(call.tenant, request_id=call.request_id, trace_id=call.trace_id,
                                   context_id=call.context_id, exchange=exchange, fallback=call.id))


class CostPartition:
    """Pricing for one partition number of the call topics."""

    def __init__(self, partition: int, settings: ProcessorSettings, files: MoneyFiles, masker: Masker,
                 clock: Clock) -> None:
        self.partition = partition
        self.files = files
        self.masker = masker
        self.clock = clock
        self.state = PartitionState(partition)
        self.out = Batch()
        self._retention = secs(settings.retention_s)
        self._bucket = expiry_bucket_us(self._retention)  # keys expire by buckets of event time
        self._expiry: dict[int, set[str]] = defaultdict(set)  # bucket of event time -> state keys
        self._next_expiry = 0
        st: dict[str, int] = {}
        self.state.kv["w"] = st
        # Idle advance off: expiry is bookkeeping, it must never depend on processing time.
        self.wm = Watermark(st, secs(settings.lateness_s), 0, clock_us(clock))

    # -- state lifecycle ------------------------------------------------------------------------

    def load(self, items: list[tuple[str, Any]]) -> None:
        """Rebuild from persisted state."""
        for key, value in items:
            if key == "w":
                self.wm.state.update(value)
                self.state.kv["w"] = self.wm.state
                continue
            self.state.kv[key] = value
            if key.startswith("r|"):
                self._expiry[value[2] - value[2] % self._bucket].add(key)

    def flush(self, suffix: str = "") -> list[tuple[str, Any]]:
        return self.state.take_writes()

    def entries(self) -> int:
        return len(self.state.kv)

    def tick(self) -> None:
        """Nothing is timed in this stage (expiry follows event time)."""

    # -- processing -----------------------------------------------------------------------------

    def process(self, kind: str, topic: str, offset: int, value: bytes | None) -> None:
        """One message of ``llm.calls`` (kind ``llm``) or ``mcp.calls`` (kind ``mcp``)."""
        try:
            call: LlmCall | McpCall = (LlmCall if kind == LLM else McpCall).model_validate_json(value or b"")
        except ValidationError as exc:
            self._dead(topic, offset, value, f"not a valid {kind} call row: {exc.errors()[:3]}")
            return
        t_us = to_us(call.time)
        if self.wm.observe(t_us):
            self._expire()
        if kind == MCP and (call.method != "tools/call" or not call.tool_name):  # type: ignore[union-attr]
            return  # not a tool call: nothing can price it
        ckind = CostKind.LLM if kind == LLM else CostKind.TOOL
        skey = f"r|{cost_row_id(ckind, call.id)}"
        seen = self.state.get(skey)
        if seen is not None and seen[0] >= call.version:
            _DUPS.inc()
            return
        now = self.clock()
        catalog, teams = self.files.catalog, self.files.teams
        finding = None
        if isinstance(call, LlmCall):
            res = llm_cost(call, catalog, computed_at=now, teams=teams, interaction_id=llm_interaction(call))
            row: CostEntry | None = res.entry
            finding = res.finding
        else:
            row = tool_cost(call, catalog, computed_at=now, teams=teams, interaction_id=mcp_interaction(call))
        if row is None:
            _FREE.inc()
            if seen is None:
                return  # free tool: no row and nothing to remember
            digest = ""
        else:
            digest = content_digest(row)
        if seen is not None and seen[1] == digest:
            _UNCHANGED.inc()  # a newer call version that changes nothing the cost row says
        elif row is not None:
            assert row.version == cost_version(call.version)
            self.out.row(row, t_us)
            if finding is not None:
                self.out.row(finding, t_us)
        if seen is None:
            self._expiry[t_us - t_us % self._bucket].add(skey)
            seen = [call.version, digest, t_us]
        else:
            seen = [call.version, digest, seen[2]]
        self.state.put(skey, seen)

    def _expire(self) -> None:
        wm = self.wm.value
        if wm < self._next_expiry:
            return
        self._next_expiry = wm + self._bucket
        limit = wm - self._retention
        for bucket in [b for b in self._expiry if b + self._bucket <= limit]:
            for key in self._expiry.pop(bucket):
                self.state.delete(key)
        self.state.touch("w", WATERMARK)

    def _dead(self, topic: str, offset: int, value: bytes | None, error: str) -> None:
        telemetry.DEAD_LETTERS.labels(stage=STAGE, reason="schema").inc()
        self.out.row(make_dead_letter(stage=STAGE, origin=topic, reason="schema", error=error[:2000],
                                      original=value or b"", masker=self.masker, kafka_topic=topic,
                                      kafka_partition=self.partition, kafka_offset=offset))
