"""The re-drive: raw events ClickHouse holds whose processing never landed go through the pipeline again.

The embedded broker keeps everything in memory, so a stop, a crash of the broker or of the whole
stack loses what was on the topics: raw events the processors had not read yet, the processors'
open state (interactions waiting to settle, Obot halves waiting for each other) and their outputs
the sink had not landed. The raw events themselves landed in ClickHouse as soon as the sink read
them, so at start ``gateledger up`` puts back on the raw topics every raw event that is

* within the processors' retention window (``GATELEDGER_PROCESSORS_RETENTION_S``, counted back from
  the newest raw event): older work could not be updated by the stream anyway, and
* not yet part of a landed interaction (``interactions.event_ids``) or part of one that landed in
  the last ``tail_s`` before the newest interaction landed (its cost rows and budget contributions,
  later stages, may not have landed when the stack died), or sharing a correlation key (tenant
  plus request id, trace id, context id or session id) with such an event, so that an
  interaction is always rebuilt from all its events, never from a part of them.

Each goes to the partition it was first read from (``raw_events.kafka_partition``: same partition
count, so the events of one interaction meet in one partition again), in the order the events
first landed, which is their original order within each partition. Everything downstream is
idempotent on replay: event ids are deterministic, every output row has a deterministic id and a
version that depends only on its content (an interaction's is the sum of its facts' versions), and
the tables keep the highest version per id. So re-emitting a row that had already landed changes
nothing, and one that had landed partially is replaced by the complete one.

Runs after the sink (which owns chDB) is healthy and before the processors and the ingest start,
so re-driven events come before new traffic.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import orjson

from gateledger.clickhouse.results import QueryResult
from gateledger.contracts.envelope import Envelope
from gateledger.contracts.wire.mcp import HOUSEKEEPING_METHODS, HOUSEKEEPING_PREFIX
from gateledger.kafka import KafkaTarget, make_producer
from gateledger.settings import KafkaSettings
from gateledger.tables import Table
from gateledger.topics import RAW_TOPICS, topic_name

Query = Callable[[str, dict[str, Any]], Awaitable[QueryResult]]
HEADER = "gl_redrive"  # marks a re-driven message (for debugging; processing ignores it)
CHUNK = 2000  # ids per row fetch
_KEYS = ("request_id", "trace_id", "context_id", "session_id")

# Every raw event of the window that is in no landed interaction, plus every raw event sharing a
# correlation key with one of those (so an interaction is rebuilt whole). In the order they first
# landed (the sink lands a partition in offset order): the processors see them as they first did.
# The processors' rule (stream_processors/normalize/mcp.py, is_housekeeping) over mcp_calls' columns.
_HOUSEKEEPING_SQL = (
    "method IN (" + ", ".join(f"'{m}'" for m in sorted(HOUSEKEEPING_METHODS)) + ")"
    f" OR startsWith(method, '{HOUSEKEEPING_PREFIX}') OR (method = '' AND jsonrpc_id = '' AND tool_name = '')"
)

_PENDING_SQL = """
WITH pending AS (
    SELECT id, tenant, request_id, trace_id, context_id, session_id
    FROM {db:Identifier}.raw_events
    WHERE time >= {since:DateTime64(6)}
      AND id NOT IN (SELECT arrayJoin(event_ids) FROM {db:Identifier}.interactions
                     WHERE time >= {since:DateTime64(6)} - INTERVAL 1 DAY
                       AND inserted_at <= (SELECT max(inserted_at) FROM {db:Identifier}.interactions)
                                         - toIntervalMillisecond({tail_ms:UInt64}))
      -- Fully handled without an interaction: protocol housekeeping MCP calls, local-agent tool calls.
      AND id NOT IN (SELECT arrayJoin(event_ids) FROM {db:Identifier}.mcp_calls
                     WHERE time >= {since:DateTime64(6)} - INTERVAL 1 DAY AND (""" + _HOUSEKEEPING_SQL + """))
      AND id NOT IN (SELECT arrayJoin(event_ids) FROM {db:Identifier}.local_agent_tool_calls
                     WHERE time >= {since:DateTime64(6)} - INTERVAL 1 DAY)
)
SELECT id, min(inserted_at) AS landed, min(kafka_offset) AS offset
FROM {db:Identifier}.raw_events
WHERE time >= {since:DateTime64(6)}
  AND (id IN (SELECT id FROM pending)
""" + "".join(
    f"       OR ({k} != '' AND (tenant, {k}) IN (SELECT tenant, {k} FROM pending WHERE {k} != ''))\n" for k in _KEYS
) + """  )
GROUP BY id
ORDER BY landed, offset, id
"""

_ROWS_SQL = """
SELECT id, source, type, tenant, time, received_at, subject, request_id, context_id, trace_id, session_id,
       data, kafka_topic, kafka_partition
FROM {db:Identifier}.raw_events
WHERE time >= {since:DateTime64(6)} AND id IN {ids:Array(String)}
ORDER BY inserted_at, kafka_offset, id
LIMIT 1 BY id
"""


@dataclass
class RedriveResult:
    """What a re-drive did."""

    since: str | None = None
    events: int = 0
    seconds: float = 0.0


def envelope_of(row: dict[str, Any]) -> Envelope:
    """The envelope a raw_events row was landed from (empty optional columns were absent fields)."""
    try:
        data = orjson.loads(row["data"]) if row["data"] else None
    except orjson.JSONDecodeError:
        data = row["data"]  # a payload that was a JSON string to begin with
    optional = {k: row[k] or None for k in ("subject", "request_id", "context_id", "trace_id", "session_id")}
    return Envelope(id=row["id"], source=row["source"], type=row["type"], tenant=row["tenant"], time=row["time"],
                    received_at=row["received_at"], data=data, **optional)


def raw_topic_for(landed_topic: str, prefix: str) -> str:
    """The raw topic (with this run's prefix) a landed row came from (its name ends with the logical one)."""
    for t in RAW_TOPICS:
        if landed_topic == t.value or landed_topic.endswith(t.value):
            return topic_name(t, prefix)
    raise ValueError(f"raw_events row from unknown topic {landed_topic!r}")


async def redrive(query: Query, kafka: KafkaSettings, target: KafkaTarget, *, database: str, window_s: float,
                  progress: Callable[[str], None], tail_s: float = 60.0) -> RedriveResult:
    """Put every raw event whose processing has not landed back on its raw topic; returns the count."""
    started = time.monotonic()
    newest = (await query(f"SELECT max(time), count() FROM {database}.{Table.RAW_EVENTS}", {})).rows[0]
    if not newest or not int(newest[1]):
        return RedriveResult()
    since_rows = (await query("SELECT toDateTime64({newest:DateTime64(6)}, 6) - toIntervalMillisecond({ms:UInt64})",
                              {"newest": str(newest[0]).rstrip("Z").replace("T", " "),
                               "ms": int(window_s * 1000)})).rows
    since = str(since_rows[0][0]).rstrip("Z").replace("T", " ")
    params = {"db": database, "since": since, "tail_ms": int(tail_s * 1000)}
    ids = [r[0] for r in (await query(_PENDING_SQL, params)).rows]
    result = RedriveResult(since=since)
    if not ids:
        return result
    progress(f"re-drive: {len(ids):,} raw event(s) in ClickHouse since {since} UTC with no landed interaction "
             f"(or one landed in the last {tail_s:.0f}s of the previous run); putting them back through the pipeline")
    producer = make_producer(kafka, target)
    await producer.start()
    try:
        for i in range(0, len(ids), CHUNK):
            res = await query(_ROWS_SQL, {"db": database, "since": since, "ids": ids[i:i + CHUNK]})
            futures = []
            for values in res.rows:
                row = dict(zip(res.columns, values, strict=True))
                env = envelope_of(row)
                futures.append(await producer.send(
                    raw_topic_for(row["kafka_topic"], target.topic_prefix),
                    value=env.model_dump_json(exclude_none=True).encode(), key=env.id.encode(),
                    partition=int(row["kafka_partition"]) % kafka.partitions,
                    headers=[("ce_type", env.type.encode()), ("ce_id", env.id.encode()), (HEADER, b"1")]))
            await asyncio.gather(*futures)
            result.events += len(futures)
    finally:
        await producer.stop()
    result.seconds = time.monotonic() - started
    progress(f"re-drive: {result.events:,} raw event(s) re-published in {result.seconds:.1f}s")
    return result
