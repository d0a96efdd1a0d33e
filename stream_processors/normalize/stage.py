"""The normalize stage for one partition of the raw topics: parse, deduplicate, dispatch, emit.

Pure logic over one partition's messages in offset order, with its state in a ``PartitionState``;
the faust agent around it only moves bytes. For every message: advance the topic's watermark and
fire what became due, drop duplicates, then turn the envelope into typed output rows, findings and
facts for the correlate stage. Everything it decides is a function of the partition's message
sequence (and of the clock, for sources going idle), so a replay after a crash decides the same.

Event time is per tenant (``common/watermark.py``): each tenant's timers fire on its own watermark.

State keys (all in this partition's slice of one faust table):
  ``w|<tenant>``              event-time watermark of one tenant, with each source's newest event
  ``d|<tenant>|<bucket>|<n>`` digests of a chunk of event ids seen (the dedup window, ``dedup.py``)
  ``m|<exchange>``            an Obot MCP exchange whose halves are being merged (or were); the
                              exchange key starts with the tenant (``obot_mcp.py``)
  ``c|<tenant>|<context>``    an AxonFlow pre-check and its audit being joined (or joined), and the
                              row of AxonFlow's audit trail for that context, if any (``axonflow.py``,
                              ``axonflow_trail.py``)
``m|`` and ``c|`` values are compact JSON array texts (``records.py``); ``load`` reads the older
layout (dicts, lists of ids) too and rewrites it.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from pydantic import ValidationError

from gateledger import findings, jsonutil
from gateledger.clock import Clock
from gateledger.contracts.envelope import Envelope
from gateledger.contracts.events import DeadLetter, LlmCall, McpCall, PolicyDecision
from gateledger.deadletter import make_dead_letter
from gateledger.masking import Masker
from gateledger.topics import SOURCES, EventType, Source, topic_name
from stream_processors import telemetry
from stream_processors.common.dedup import DedupWindow, decode_chunk, encode_chunk
from stream_processors.common.emit import Batch
from stream_processors.common.partition_state import DEDUP, WATERMARK, PartitionState
from stream_processors.common.timers import TimerHeap
from stream_processors.common.timeutil import clock_us, expiry_bucket_us, secs, to_us
from stream_processors.common.watermark import TenantWatermarks
from stream_processors.facts import FACTS, gate_fact, interaction_id, llm_fact, mcp_fact, policy_fact, root_key, webhook_fact
from stream_processors.normalize import governance, llm, local_agent, mcp, policy, records, webhook
from stream_processors.normalize.errors import InvalidEvent
from stream_processors.normalize.axonflow import ContextJoin
from stream_processors.normalize.dispatch import Handler, handler_table, handles
from stream_processors.normalize.keys import tenant_of
from stream_processors.normalize.obot_mcp import ExchangeMerge
from stream_processors.settings import ProcessorSettings

STAGE = "normalize"

_DEDUP = telemetry.DUPLICATES.labels(stage=STAGE)
_BEYOND = telemetry.BEYOND_WINDOW.labels(stage=STAGE)


@dataclass(frozen=True)
class RawTopics:
    """Physical names of the raw topics this stage reads, each with its source (gateledger/topics.py)."""

    sources: dict[str, Source]

    @classmethod
    def with_prefix(cls, prefix: str) -> RawTopics:
        return cls({topic_name(s.topic, prefix): s for s in SOURCES})

    def all(self) -> tuple[str, ...]:
        return tuple(self.sources)


class NormalizePartition(ExchangeMerge, ContextJoin):
    """The normalize stage's logic and state for one partition number (across all raw topics)."""

    def __init__(self, partition: int, settings: ProcessorSettings, topics: RawTopics, masker: Masker,
                 clock: Clock) -> None:
        self.partition = partition
        self.s = settings
        self.topics = topics
        self.masker = masker
        self.clock = clock
        self.state = PartitionState(partition)
        self.out = Batch()
        window = secs(settings.dedup_window_s)
        bucket = expiry_bucket_us(window) if settings.dedup_bucket_s is None else secs(settings.dedup_bucket_s)
        self.dedup = DedupWindow(window, bucket)
        self._clock_us: Callable[[], int] = clock_us(clock)
        self.wms = TenantWatermarks(self.state, lateness=secs(settings.lateness_s),
                                    idle_advance=secs(settings.idle_advance_s),
                                    source_idle=secs(settings.source_idle_s), clock_us=self._clock_us)
        # Timers per tenant: joins (key "") on the tenant's watermark; the halves of an exchange
        # (key: their source) on their own source's progress, so a source first seen behind the
        # others does not time its own exchanges out at once.
        self._timers: dict[str, dict[str, TimerHeap]] = {}
        self._next_expiry: dict[str, int] = {}
        self._merge_timeout = secs(settings.mcp_merge_timeout_s)
        self._retention = secs(settings.retention_s)
        self._precheck_ttl = secs(settings.precheck_ttl_s)
        self._unaudited_grace = secs(settings.unaudited_grace_s)
        self._orphan_grace = secs(settings.orphan_grace_s)
        self._gap_fill = secs(settings.audit_gap_fill_s if settings.audit_gap_fill_s is not None
                              else settings.retention_s)
        self._raw = b""
        self._firing: str | None = None  # the key whose timer is being fired
        self._deferred: list[tuple[int, str]] = []  # its next due, pushed after the firing pass
        # Parsed halves waiting for their other half (a cache: the state holds their JSON text).
        self._parsed: dict[tuple[str, str], tuple[Envelope, Any]] = {}
        self._handlers = self._handler_table()

    # -- state lifecycle --------------------------------------------------------------------------

    def load(self, items: list[tuple[str, Any]]) -> None:
        """Rebuild from persisted state (after a start, restart or rebalance)."""
        kv = self.state.kv
        legacy = set(self.topics.all())
        for key, value in items:
            kv[key] = value
            kind = key[:2]
            if kind == "w|":
                if TenantWatermarks.is_current(key, value):
                    self.wms.load(key, value)
                else:
                    self.state.delete(key, WATERMARK)  # a per-topic watermark of an older version
            elif kind == "d|":
                head, bucket, _n = key.rsplit("|", 2)
                if head[2:] in legacy:
                    self.state.delete(key, DEDUP)  # a per-topic chunk of an older version
                else:
                    self.dedup.load_chunk(key, head[2:], int(bucket), value)
                    if isinstance(value, list):  # ids of the older layout: rewritten as digests
                        self.state.put(key, encode_chunk(decode_chunk(value)), DEDUP)
            elif kind in ("m|", "c|"):
                st = records.decode(key, value)
                if isinstance(value, dict):  # the older layout: rewritten compact
                    self.state.put(key, records.encode_exchange(key, st) if kind == "m|"
                                   else records.encode_context(st))
                if st.get("due") is not None:
                    self._timer(tenant_of(key, st), st.get("src", "")).push(st["due"], key)

    def _schedule(self, key: str, st: dict[str, Any], old_due: int | None) -> None:
        """Have ``key`` fire at ``st["due"]``, with one heap entry per key rather than one per change.

        The heap holds, for every key with a due time, an entry at or before it: a due moved later
        pushes nothing (the earlier entry, when popped, is pushed again at the state's due), one moved
        earlier is pushed. The key being fired lost its entry: its next due is pushed once the firing
        pass is over (``_on_watermark``), so a due already reached fires on the next pass, as before.
        """
        due = st["due"]
        heap = self._timer(tenant_of(key, st), st.get("src", "") if key[:2] == "m|" else "")
        if key == self._firing:
            self._deferred.append((due, key))
        elif old_due is None or due < old_due:
            heap.push(due, key)

    def _timer(self, tenant: str, source: str = "") -> TimerHeap:
        heaps = self._timers.setdefault(tenant, {})
        heap = heaps.get(source)
        if heap is None:
            heap = heaps[source] = TimerHeap()
        return heap

    def flush(self, suffix: str) -> list[tuple[str, Any]]:
        """State writes of everything processed since the last flush, in the order they must land."""
        for _topic, _bucket, key, ids in self.dedup.take_pending(suffix):
            self.state.put(key, ids, DEDUP)
        return self.state.take_writes()

    def entries(self) -> int:
        return len(self.state.kv)

    # -- processing -----------------------------------------------------------------------------

    def process(self, topic: str, offset: int, value: bytes | None) -> None:
        """One raw message, in offset order."""
        self._raw = value or b""
        try:
            env = Envelope.model_validate_json(self._raw)
        except ValidationError as exc:
            reason = "invalid_json" if any(e["type"] == "json_invalid" for e in exc.errors()) else "schema"
            self._dead(topic, offset, value, reason, f"not a valid envelope: {_short(exc)}", None)
            return
        t_us = to_us(env.time)
        tenant = env.tenant
        self.wms.observe(tenant, f"{env.source}|{env.type}", t_us)
        self._on_watermark(tenant)
        # Remembered per tenant: two tenants' records with the same upstream id are not duplicates.
        seen_key = f"{tenant}|{env.id}"
        if self.dedup.seen(tenant, seen_key):
            _DEDUP.inc()
            return
        if self.dedup.beyond(t_us, self.wms.value(tenant)):
            _BEYOND.inc()
        self.dedup.add(tenant, seen_key, t_us)
        try:
            self._dispatch(topic, env, t_us)
        except InvalidEvent as exc:
            self._dead(topic, offset, value, exc.reason, str(exc), env.tenant, env.type)
        # A late event can schedule work that is already due: do it now, not at the next move.
        self._on_watermark(tenant)

    def tick(self) -> None:
        """Let tenants whose sources went quiet move on with the clock, and fire what became due."""
        for tenant in self.wms.tick():
            self._on_watermark(tenant)
        for tenant, source in self.wms.prune(STAGE, self._retention, self._holds):
            heaps = self._timers.get(tenant, {})
            if source is None:
                self._timers.pop(tenant, None)
                self._next_expiry.pop(tenant, None)
            elif source in heaps and not heaps[source]:
                del heaps[source]
        self.wms.report(STAGE)
        telemetry.WATERMARK.labels(stage=STAGE, partition=str(self.partition)).set(self.wms.slowest() / 1e6)

    def _holds(self, tenant: str) -> bool:
        """Whether anything of the tenant still waits here (a timer, remembered event ids)."""
        return any(self._timers.get(tenant, {}).values()) or self.dedup.holds(tenant)

    def _on_watermark(self, tenant: str) -> None:
        """Fire the tenant's due timers and expire its old dedup chunks (cheap when nothing is due)."""
        wm = self.wms.value(tenant)
        for source, heap in list(self._timers.get(tenant, {}).items()):
            limit = self.wms.source_value(tenant, source) if source else wm
            nxt = heap.next_due()
            if nxt is None or nxt > limit:
                continue
            while (nxt := heap.next_due()) is not None and nxt <= limit:
                popped, key = heap.pop()
                value = self.state.get(key)
                due = None if value is None else records.decode(key, value).get("due")
                if due is None:
                    continue  # gone
                if due > popped:
                    heap.push(due, key)  # rescheduled later since this entry was pushed (``_schedule``)
                    continue
                self._firing = key
                try:
                    if key[:2] == "m|":
                        self._merge_due(key, due, limit)
                    else:
                        self._context_due(key, due, limit)
                finally:
                    self._firing = None
            for due, key in self._deferred:
                heap.push(due, key)
            self._deferred.clear()
        if wm >= self._next_expiry.get(tenant, 0):
            for key in self.dedup.expire(tenant, wm):
                self.state.delete(key, DEDUP)
            self._next_expiry[tenant] = wm + self.dedup.bucket

    def _dispatch(self, topic: str, env: Envelope, t_us: int) -> None:
        rcv = to_us(env.received_at)
        source = self.topics.sources.get(topic)
        if source is not None and not source.types:
            self._cloudevent(env, rcv)  # the record names its own type
        elif source is not None and env.type in source.types:
            self._handlers[EventType(env.type)](env, t_us, rcv)
        else:
            # A type another source carries (a CloudEvent typed obot.mcp.call) is not taken for it.
            raise InvalidEvent("unknown_type", f"envelope type {env.type!r} is not expected on {topic}")

    def _handler_table(self) -> dict[EventType, Handler]:
        """What each envelope type of the registry's sources is normalized by (``dispatch.py``)."""
        return handler_table(self, SOURCES)

    @handles(EventType.OBOT_MCP_AUDIT_EVENT)
    def _obot_mcp_audit_event(self, env: Envelope, t_us: int, rcv: int) -> None:
        self._emit_mcp(mcp.call_from_audit_event(env), rcv)

    @handles(EventType.OBOT_LLM_CALL)
    def _obot_llm_call(self, env: Envelope, t_us: int, rcv: int) -> None:
        self._emit_llm(llm.call_from_obot(env), rcv)

    @handles(EventType.OBOT_WEBHOOK_DECISION)
    def _obot_webhook(self, env: Envelope, t_us: int, rcv: int) -> None:
        self._emit_webhook(webhook.decision_from_filter(env), rcv)

    @handles(EventType.OBOT_LOCAL_AGENT_TOOL_CALL)
    def _local_agent(self, env: Envelope, t_us: int, rcv: int) -> None:
        row = local_agent.call_from_local_agent_event(env)
        self.out.row(row, to_us(row.time))

    @handles(EventType.AXONFLOW_DECIDE, EventType.AXONFLOW_MCP_CHECK)
    def _governance(self, env: Envelope, t_us: int, rcv: int) -> None:
        row, verdict = governance.decision_from_governance(env)
        self._emit_gate(row, rcv, fact=verdict)

    @handles(EventType.AXONFLOW_AUDIT_ENTRY)
    def _audit_entry(self, env: Envelope, t_us: int, rcv: int) -> None:
        """A row of AxonFlow's audit trail: meets the tap's records of its context in the join."""
        entry = governance.parse_entry(env)
        if t_us < self.wms.value(env.tenant) - self._retention:
            # What the tap saw of a context this old is forgotten: no telling a gap from a double.
            telemetry.SKIPPED.labels(stage=STAGE, reason="audit_entry_beyond_retention").inc()
            return
        self._trail_row(env, entry, t_us, rcv)

    def _cloudevent(self, env: Envelope, rcv: int) -> None:
        if not env.type.startswith("gateledger."):
            # Someone else's event type: kept in raw_events by the sink, nothing to normalize.
            telemetry.SKIPPED.labels(stage=STAGE, reason="foreign_cloudevent_type").inc()
            return
        ce = env.data if isinstance(env.data, dict) else {}
        data = ce.get("data")
        if not isinstance(data, dict):
            raise InvalidEvent("schema", f"{env.type} CloudEvent needs an object in data")
        if env.type == "gateledger.llm.call":
            self._emit_llm(llm.call_from_cloudevent(env, data), rcv)
        elif env.type == "gateledger.mcp.call":
            self._emit_mcp(mcp.call_from_cloudevent(env, data), rcv)
        elif env.type == "gateledger.policy.decision":
            row = policy.decision_from_cloudevent(env, data)
            self.out.row(row, to_us(row.time))
            root = root_key(row.tenant, request_id=row.request_id, trace_id=row.trace_id, context_id=row.context_id,
                            fallback=row.id)
            self.out.internal(FACTS, root, policy_fact(row, root, rcv))
        elif env.type == "gateledger.webhook.decision":
            self._emit_webhook(webhook.decision_from_cloudevent(env, data), rcv)
        else:
            telemetry.SKIPPED.labels(stage=STAGE, reason="unmodelled_gateledger_type").inc()

    # -- emitting ---------------------------------------------------------------------------------

    def _now(self) -> datetime:
        return self.clock()

    def _emit_mcp(self, call: McpCall, rcv: int) -> None:
        t = to_us(call.time)
        self.out.row(call, t)
        for d in mcp.webhook_decisions(call):
            self.out.row(d, t)
        if mcp.is_housekeeping(call):
            return  # recorded as an MCP call; not part of any user-level interaction
        exchange = None
        if call.session_id and call.jsonrpc_id:
            exchange = f"{call.mcp_server_id or ''}|{call.session_id}|{call.jsonrpc_id}"
        root = root_key(call.tenant, request_id=call.request_id, trace_id=call.trace_id, context_id=call.context_id,
                        exchange=exchange, fallback=call.id)
        self.out.internal(FACTS, root, mcp_fact(call, root, rcv), t)

    def _emit_llm(self, call: LlmCall, rcv: int, root: str | None = None, fact: bool = True) -> None:
        t = to_us(call.time)
        self.out.row(call, t)
        if not fact:
            return
        root = root or root_key(call.tenant, request_id=call.request_id, trace_id=call.trace_id,
                                context_id=call.context_id, fallback=call.id)
        if findings.is_suspect_usage(call):
            self.out.row(findings.suspect_usage(call, interaction_id=interaction_id(root), now=self._now()), t)
        self.out.internal(FACTS, root, llm_fact(call, root, rcv), t)

    def _emit_webhook(self, row: Any, rcv: int) -> None:
        t = to_us(row.time)
        self.out.row(row, t)
        root = root_key(row.tenant, request_id=row.request_id, trace_id=row.trace_id, fallback=row.id)
        self.out.internal(FACTS, root, webhook_fact(row, root, rcv), t)

    def _emit_gate(self, row: PolicyDecision, rcv: int, fact: bool = True) -> None:
        t = to_us(row.time)
        self.out.row(row, t)
        if not fact:
            return  # no verdict (AxonFlow errored): recorded, but nothing for correlation to judge by
        root = root_key(row.tenant, request_id=row.request_id, trace_id=row.trace_id, fallback=row.id)
        self.out.internal(FACTS, root, gate_fact(row, root, rcv), t)

    def _dead(self, topic: str, offset: int, value: bytes | None, reason: str, error: str, tenant: str | None,
              etype: str | None = None) -> None:
        dl: DeadLetter = make_dead_letter(
            stage=STAGE, origin=topic, reason=reason, error=error, original=value or b"", masker=self.masker,
            tenant=tenant, kafka_topic=topic, kafka_partition=self.partition, kafka_offset=offset,
            details={"type": etype} if etype else None,
        )
        telemetry.DEAD_LETTERS.labels(stage=STAGE, reason=reason).inc()
        self.out.row(dl)


def _short(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or '<root>'}: {e['msg']}" for e in exc.errors()[:5])


def decode_key(value: bytes | None) -> str:
    """A Kafka key as text."""
    return value.decode("utf-8", "backslashreplace") if value else ""


__all__ = ["FACTS", "STAGE", "NormalizePartition", "RawTopics", "decode_key", "jsonutil"]
