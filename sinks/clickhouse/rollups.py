"""Feeding the materialized-view rollups so that they stay exact under duplicates, versions and crashes.

A materialized view on a base table would count every inserted row: a processor's re-emitted
duplicate, or version 1 and version 2 of one event, would both be summed. So the rollup views read
``rollup_feed`` instead, which the sink fills per batch with *changes*: +1 × an event that is new or
newer than what the table held, and -1 × the version it supersedes.

"What the table held" must be the same on every attempt at a batch, or a replay after a crash would
compute another feed. It is therefore looked up once, stored (``rollup_prior``) with the batch's
deduplication token before the batch's rows are inserted, and always read back from there: a replay
gets the first attempt's snapshot even if the rows landed since (and merges collapsed versions).

The same snapshot tells which events land for the first time (no copy or version of them before):
those go once to ``landing_feed`` (distinct events and delay per minute, for the dashboards).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

from gateledger import jsonutil
from gateledger.tables import Table, final
from sinks.clickhouse.batching import flush_token_of
from sinks.clickhouse.lines import LineError
from sinks.clickhouse.rows import RowError, to_datetime
from sinks.clickhouse.writer import Writer

PRIOR_TABLE = Table.ROLLUP_PRIOR
FEED_TABLE = Table.ROLLUP_FEED
LANDING_TABLE = Table.LANDING_FEED
DECISION_FEED_TABLE = Table.DECISION_FEED

Row = dict[str, Any]  # a normalized event: id, version, tenant, time (canonical text) and the source's fields


def _s(v: Any) -> str:
    return "" if v is None else str(v)


def _i(v: Any) -> int:
    if v is None or v == "":
        return 0
    return int(v)


def _dec(v: Any) -> str:
    return "0" if v is None or v == "" else str(Decimal(str(v)))


def _opt_num(v: Any) -> float | None:
    return None if v is None or v == "" else float(v)


def canonical_time(v: Any) -> str:
    """UTC time as ``YYYY-MM-DD hh:mm:ss.ffffff``: readable by parameter binding and by JSONEachRow."""
    return to_datetime(v).isoformat(sep=" ", timespec="microseconds")[:26]


@dataclass(frozen=True)
class RollupSource:
    """A base table whose rows feed the rollups."""

    table: str
    fields: tuple[str, ...]  # columns the feed needs, besides id / version / tenant / time
    to_feed: Callable[[Row], dict[str, Any]] | None  # None: only first landings are fed
    landing_fields: tuple[str, ...] = ()  # of ``fields``: the landing feed's source and type, if any
    versioned: bool = True  # raw_events has no version column: every copy is version 1
    feed_table: str = FEED_TABLE  # where the changes go
    # Whether a version counts in the rollups at all: a withdrawn finding (retracted) counts nowhere,
    # as the analyst views (migration 0060) show it nowhere.
    counts: Callable[[Row], bool] | None = None

    def counted(self, row: Row) -> bool:
        """Whether this version contributes to the rollups."""
        return self.counts is None or self.counts(row)

    def normalize(self, obj: dict[str, Any]) -> Row:
        """The fields the feed needs from a message or a looked-up row; raises LineError."""
        try:
            row: Row = {
                "id": _s(obj.get("id")),
                "version": _i(obj.get("version", 1)),
                "tenant": _s(obj.get("tenant")),
                "time": canonical_time(obj.get("time")),
            }
            for f in self.fields:
                row[f] = obj.get(f)
                if isinstance(row[f], Decimal):
                    row[f] = str(row[f])
            if self.to_feed is not None:
                self.to_feed(row)  # proves every field converts before anything is inserted
        except (RowError, ValueError, TypeError, ArithmeticError, OSError) as exc:
            raise LineError("row_mapping", f"{self.table}: {exc}") from None
        return row

    def feed_row(self, row: Row, sign: int) -> dict[str, Any]:
        """One rollup_feed row."""
        if self.to_feed is None:
            raise ValueError(f"{self.table} feeds no rollup changes")
        return {"source": self.table, "sign": sign, "tenant": row["tenant"], "time": row["time"], **self.to_feed(row)}

    def landing_row(self, row: Row) -> dict[str, Any]:
        """One landing_feed row (landed_at is the insert's own time)."""
        source, type_ = (_s(row[f]) for f in self.landing_fields) if self.landing_fields else ("", "")
        return {"output_table": self.table, "tenant": row["tenant"], "time": row["time"], "source": source,
                "type": type_}


def _zero_tokens() -> dict[str, int]:
    return {"input_tokens": 0, "output_tokens": 0, "cache_read_tokens": 0, "cache_write_tokens": 0, "total_tokens": 0}


def _mcp(r: Row) -> dict[str, Any]:
    status = _s(r["status"])
    return {
        "kind": "mcp", "status": status, "mcp_server_id": _s(r["mcp_server_id"]), "tool_name": _s(r["tool_name"]),
        "provider": "", "model": "", "team": "", "user_id": _s(r["user_id"]), "client_id": _s(r["client_name"]),
        "calls": 1, "errors": int(status in ("failure", "timeout")), "denied": int(status == "denied"),
        "latency_ms": _opt_num(r["duration_ms"]), **_zero_tokens(), "cost_usd": "0", "unpriced": 0,
    }


def _llm(r: Row) -> dict[str, Any]:
    status = _s(r["status"]) or "success"
    return {
        "kind": "llm", "status": _s(r["status"]), "mcp_server_id": "", "tool_name": "", "provider": _s(r["provider"]),
        "model": _s(r["model"]),
        "team": "", "user_id": _s(r["user_id"]), "client_id": _s(r["client_id"]),
        "calls": 1, "errors": int(status != "success"), "denied": 0, "latency_ms": _opt_num(r["latency_ms"]),
        "input_tokens": _i(r["input_tokens"]), "output_tokens": _i(r["output_tokens"]),
        "cache_read_tokens": _i(r["cache_read_tokens"]), "cache_write_tokens": _i(r["cache_write_tokens"]),
        "total_tokens": _i(r["total_tokens"]), "cost_usd": "0", "unpriced": 0,
    }


def _policy(r: Row) -> dict[str, Any]:
    return {
        "outcome": "approved" if r["approved"] else "blocked", "user_id": _s(r["user_id"]),
        "policies": [_s(p) for p in (r["policies"] or [])], "block_reason": _s(r["block_reason"]),
        "filter_name": "", "mcp_server_id": "", "tool_name": "",
    }


def _webhook(r: Row) -> dict[str, Any]:
    return {
        "outcome": _s(r["decision"]), "user_id": _s(r["user_id"]), "policies": [], "block_reason": "",
        "filter_name": _s(r["filter_name"]), "mcp_server_id": _s(r["mcp_server_id"]), "tool_name": _s(r["tool_name"]),
    }


def _finding(r: Row) -> dict[str, Any]:
    return {"outcome": _s(r["kind"]), "user_id": "", "policies": [], "block_reason": "", "filter_name": "",
            "mcp_server_id": "", "tool_name": ""}


def _cost(r: Row) -> dict[str, Any]:
    return {
        "kind": "llm" if _s(r["kind"]) == "llm" else "mcp",
        "mcp_server_id": _s(r["mcp_server_id"]), "tool_name": _s(r["tool_name"]),
        "provider": _s(r["provider"]), "model": _s(r["model"]), "team": _s(r["team"]),
        "user_id": _s(r["user_id"]), "client_id": _s(r["client_id"]),
        "calls": 0, "errors": 0, "denied": 0, "latency_ms": None,
        "input_tokens": _i(r["input_tokens"]), "output_tokens": _i(r["output_tokens"]),
        "cache_read_tokens": _i(r["cache_read_tokens"]), "cache_write_tokens": _i(r["cache_write_tokens"]),
        "total_tokens": _i(r["input_tokens"]) + _i(r["output_tokens"]),
        "cost_usd": _dec(r["total_cost_usd"]), "unpriced": int(bool(r["unpriced"])),
    }


ROLLUP_SOURCES: dict[str, RollupSource] = {
    s.table: s
    for s in (
        RollupSource(Table.MCP_CALLS, ("status", "mcp_server_id", "tool_name", "user_id", "client_name", "duration_ms"), _mcp),
        RollupSource(
            Table.LLM_CALLS,
            ("status", "provider", "model", "user_id", "client_id", "latency_ms", "input_tokens", "output_tokens",
             "cache_read_tokens", "cache_write_tokens", "total_tokens"),
            _llm,
        ),
        RollupSource(
            Table.COST_LEDGER,
            ("kind", "mcp_server_id", "tool_name", "provider", "model", "team", "user_id", "client_id",
             "input_tokens", "output_tokens", "cache_read_tokens", "cache_write_tokens", "total_cost_usd", "unpriced"),
            _cost,
        ),
        RollupSource(Table.RAW_EVENTS, ("source", "type"), None, landing_fields=("source", "type"), versioned=False),
        RollupSource(Table.POLICY_DECISIONS, ("approved", "user_id", "policies", "block_reason"), _policy,
                     feed_table=DECISION_FEED_TABLE),
        RollupSource(Table.WEBHOOK_DECISIONS, ("decision", "user_id", "filter_name", "mcp_server_id", "tool_name"), _webhook,
                     feed_table=DECISION_FEED_TABLE),
        RollupSource(Table.FINDINGS, ("kind", "retracted"), _finding, feed_table=DECISION_FEED_TABLE,
                     counts=lambda r: not r["retracted"]),
    )
}


def _newest(accepted: Iterable[Row]) -> dict[str, Row]:
    newest: dict[str, Row] = {}
    for row in accepted:
        cur = newest.get(row["id"])
        if cur is None or row["version"] > cur["version"]:
            newest[row["id"]] = row
    return newest


def compute_landings(source: RollupSource, prior: dict[str, Row], accepted: Iterable[Row]) -> list[dict[str, Any]]:
    """One landing_feed row per event of the batch the table held no copy or version of."""
    return [source.landing_row(row) for event_id, row in _newest(accepted).items() if event_id not in prior]


def compute_feed(source: RollupSource, prior: dict[str, Row], accepted: Iterable[Row]) -> list[dict[str, Any]]:
    """The rollup changes of a batch: per event id, its newest accepted version against what the table held."""
    if source.to_feed is None:
        return []
    out: list[dict[str, Any]] = []
    for event_id, row in _newest(accepted).items():
        before = prior.get(event_id)
        if before is not None and row["version"] <= before["version"]:
            continue
        if before is not None and source.counted(before):
            out.append(source.feed_row(before, -1))
        if source.counted(row):
            out.append(source.feed_row(row, +1))
    return out


class RollupFeeder:
    """Snapshots, stores and feeds, through the sink's writer."""

    def __init__(self, writer: Writer) -> None:
        self.writer = writer

    def lookup(self, source: RollupSource, rows: list[Row]) -> dict[str, Row]:
        """The latest stored version of each of these events, from the base table itself."""
        if not rows:
            return {}
        # time as UTC text: a driver's datetime would depend on the session time zone.
        version = "version" if source.versioned else "toUInt32(1)"
        cols = ", ".join(["id", version, "tenant", "toString(time)", *(f"`{c}`" for c in source.fields)])
        # All versions of an event share (tenant, time, id): the primary key finds them, FINAL merges
        # only those granules. Keys travel as one JSON string each: ClickHouse parses a 10k-element
        # array literal parameter several times slower than it extracts the same array from JSON.
        result = self.writer.query(
            f"SELECT {cols} FROM {final(self.writer.qualified(source.table))}"
            " WHERE tenant IN (SELECT arrayJoin(JSONExtract({tenants:String}, 'Array(String)')))"
            " AND time IN (SELECT arrayJoin(JSONExtract({times:String}, 'Array(DateTime64(6, \\'UTC\\'))')))"
            " AND id IN (SELECT arrayJoin(JSONExtract({ids:String}, 'Array(String)')))",
            {
                "tenants": jsonutil.dumps_str(sorted({r["tenant"] for r in rows})),
                "times": jsonutil.dumps_str(sorted({r["time"] for r in rows})),
                "ids": jsonutil.dumps_str(sorted({r["id"] for r in rows})),
            },
        )
        names = ("id", "version", "tenant", "time", *source.fields)
        found: dict[str, Row] = {}
        for values in result:
            row = source.normalize(dict(zip(names, values, strict=True)))
            found[row["id"]] = row
        return found

    def snapshot(self, source: RollupSource, token: str, rows: list[Row]) -> dict[str, Row]:
        """What the table held for the batch's events before the batch: stored once, read back always."""
        return self.snapshot_many(source, [(token, rows)])[token]

    def snapshot_many(self, source: RollupSource, batches: list[tuple[str, list[Row]]],
                      flush_token: str | None = None) -> dict[str, dict[str, Row]]:
        """``snapshot`` of several batches of one table at once (one look-up, one insert, one read-back).

        The batches' event ids must be disjoint (the sink groups them so): then no batch's rows can
        change what the table held for another's events, and each batch's snapshot is the one it
        would have had alone. Each is stored under its own token; the read-back takes, per batch, the
        earliest stored snapshot, so a replay grouped differently still gets the first attempt's.
        """
        found = self.lookup(source, [r for _, rows in batches for r in rows])
        lines: list[bytes] = []
        for token, rows in batches:
            lines.append(jsonutil.dumps({"batch": token, "source": source.table, "id": "", "version": 0, "row": ""}))
            lines += [
                jsonutil.dumps({"batch": token, "source": source.table, "id": event_id, "version": r["version"],
                                "row": jsonutil.dumps_str(r)})
                for event_id, r in ((i, found[i]) for i in sorted({row["id"] for row in rows}) if i in found)
            ]
        tokens = [token for token, _ in batches]
        group = flush_token or flush_token_of(source.table, tokens)
        self.writer.insert(PRIOR_TABLE, lines, f"{group}/prior")
        prior = self.writer.qualified(PRIOR_TABLE)
        stored = self.writer.query(
            f"SELECT batch, id, row FROM {prior}"
            " WHERE batch IN (SELECT arrayJoin(JSONExtract({batches:String}, 'Array(String)')))"
            f" AND (batch, recorded_at) IN (SELECT batch, min(recorded_at) FROM {prior}"
            " WHERE batch IN (SELECT arrayJoin(JSONExtract({batches:String}, 'Array(String)'))) GROUP BY batch)",
            {"batches": jsonutil.dumps_str(tokens)},
        )
        out: dict[str, dict[str, Row]] = {token: {} for token in tokens}
        marked: set[str] = set()
        for token, event_id, row in stored:
            if event_id:
                out[token][event_id] = jsonutil.loads(row)
            else:
                marked.add(token)
        missing = [t for t in tokens if t not in marked]
        if missing:
            raise RuntimeError(f"rollup snapshot of {missing} not readable after insert")
        return out

    def feed(self, source: RollupSource, token: str, prior: dict[str, Row], accepted: list[Row]) -> int:
        """Insert the batch's rollup changes and first landings (deduplicated by the batch token); returns the rows fed."""
        return self.feed_many(source, token, [(prior, accepted)])

    def feed_many(self, source: RollupSource, token: str, batches: list[tuple[dict[str, Row], list[Row]]]) -> int:
        """The rollup changes and first landings of the batches of one flush, each computed against its
        own snapshot, in one insert each (deduplicated by the flush token); returns the rows fed."""
        rows = [r for prior, accepted in batches for r in compute_feed(source, prior, accepted)]
        self.writer.insert(source.feed_table, [jsonutil.dumps(r) for r in rows], f"{token}/feed")
        landings = [r for prior, accepted in batches for r in compute_landings(source, prior, accepted)]
        self.writer.insert(LANDING_TABLE, [jsonutil.dumps(r) for r in landings], f"{token}/landing")
        return len(rows) + len(landings)
