"""A budget's earlier spend: the cost rows already in ClickHouse and on ``cost.ledger`` when it appears.

The fan-out matches each cost row against the budgets loaded at that moment. A budget added to a
running stack (or the first start of a budgets file over existing history) would otherwise count
from $0 and let its period overshoot by everything spent before it was loaded, with enforcement
and alerts none the wiser.

So, for every budget whose matching rules (id, scope, period) the stream has not yet back-filled:

0. read the cost rows of its current period from ClickHouse's ``cost_ledger`` (latest version per
   row; ``ClickHouseLedger``), when the worker can query ClickHouse: ClickHouse is the system of
   record, and on the embedded stack the topic below is empty after every restart (the broker
   keeps it in memory), as are the markers of step 4 and the accountant's changelog, so every
   start back-fills every budget from ClickHouse and a block budget exhausted before a restart is
   exhausted again as soon as the contributions are counted;
1. find, per ``cost.ledger`` partition, the first message produced at or after the start of the
   budget's current period (rolling: of its window), less an hour for clock skew;
2. read up to the partition's high watermark as it was when the scan started (every later message
   goes through the fan-out, which shares these budget definitions and therefore already has the
   new budget);
3. produce one contribution per matching cost row to the contributions topic, packed and
   partitioned exactly like the fan-out's, and wait for the acknowledgements;
4. record the budget and its matching key on a compacted marker topic, so a restart skips it.

The accountant keeps a ledger entry per (budget, cost row) and adds only the difference a newer
version makes, so a row the fan-out also contributed (it may lag behind the scan) counts once,
and a crash before step 4 only repeats the scan. Steps 0 and 1-3 overlap on every row that landed
and is still on the topic; that is what makes the union safe (nothing between "landed" and "on the
topic" is missed) and costs nothing in correctness. Rows of periods older than ``budget_retention_s``
are ignored by the accountant as usual.
"""

from __future__ import annotations

import asyncio
import hashlib
import logging
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

import orjson
from aiokafka import TopicPartition
from pydantic import ValidationError

from gateledger.clickhouse.access import ClientQuerier, StackQuerier
from gateledger.clickhouse.results import QueryResult
from gateledger.clock import Clock
from gateledger.contracts.events import CostEntry
from gateledger.kafka import KafkaTarget, make_consumer, true_highwaters
from gateledger.money.accounting import contributions_for
from gateledger.money.amounts import canonical
from gateledger.money.budgets import Budget
from gateledger.money.periods import PeriodKind
from gateledger.settings import KafkaSettings, Settings
from gateledger.tables import Table, final
from gateledger.topics import TopicSpec
from stream_processors import telemetry
from stream_processors.common.money_files import MoneyFiles
from stream_processors.common.partitioning import partition_for
from stream_processors.runtime import PACK_MAX

MARKERS = "budget-backfills"  # logical name of the marker topic


def markers_spec(name: str, kafka: KafkaSettings) -> TopicSpec:
    """The marker topic: one partition (a few small records, read whole at start), compacted.

    Created by ``gateledger serve processors`` before the worker starts, like every other topic, so
    the backfill never waits for a topic to appear.
    """
    return TopicSpec(name, 1, kafka.replication_factor, {"cleanup.policy": "compact"})


SKEW = timedelta(hours=1)
log = logging.getLogger(__name__)


def matching_key(budget: Budget) -> str:
    """What decides which cost rows a budget counts and in which periods (not its limit or thresholds)."""
    what = {"id": budget.id, "scope": {d: list(v) for d, v in budget.scope.constrained().items()},
            "period": budget.period.value, "timezone": budget.timezone, "hours": budget.hours}
    return hashlib.sha256(orjson.dumps(what, option=orjson.OPT_SORT_KEYS)).hexdigest()[:32]


def scan_start(budgets: list[Budget], now: datetime) -> datetime:
    """The earliest produce time a cost row of these budgets' current periods can have."""
    starts = []
    for b in budgets:
        starts.append(b.spec.period_at(now).start)
        if b.period is PeriodKind.ROLLING:
            starts.append(now - timedelta(hours=b.hours or 1))
    return min(starts) - SKEW


_OPTIONAL_TEXT = {name for name, f in CostEntry.model_fields.items()
                  if f.annotation == (str | None)}  # '' in ClickHouse means absent
_LEDGER_SQL = "SELECT * FROM " + final("{db:Identifier}." + Table.COST_LEDGER) + """
WHERE time >= {since:DateTime64(6)}
ORDER BY time, id
LIMIT {limit:UInt32} OFFSET {offset:UInt64}
"""
PAGE = 5000


class ClickHouseLedger:
    """Cost rows from ClickHouse: through the embedded stack's sink (it owns chDB), or a server directly."""

    def __init__(self, settings: Settings, query_url: str) -> None:
        self.database = settings.clickhouse.database
        self._stack = StackQuerier(query_url, data_dir=settings.core.data_dir) if query_url else None
        self._settings = settings

    @classmethod
    def from_settings(cls, settings: Settings, query_url: str) -> ClickHouseLedger | None:
        """None when there is no way to query (chDB owned by another process, no query URL given)."""
        if not query_url and settings.clickhouse.is_chdb(settings.core):
            return None
        return cls(settings, query_url)

    async def _query(self, sql: str, params: dict[str, Any]) -> QueryResult:
        if self._stack is not None:
            return await self._stack.run_async(sql, params)

        def run() -> QueryResult:
            querier = ClientQuerier(self._settings)
            try:
                return querier.run(sql, params)
            finally:
                querier.close()

        return await asyncio.to_thread(run)

    async def rows(self, since: datetime) -> Any:
        """Every cost row (latest version) with an event time at or after ``since``, page by page."""
        offset = 0
        since_text = since.astimezone(UTC).replace(tzinfo=None).isoformat(sep=" ")
        while True:
            res = await self._query(_LEDGER_SQL, {"db": self.database, "since": since_text, "limit": PAGE,
                                                  "offset": offset})
            fields = [c for c in res.columns if c in CostEntry.model_fields]
            # Decimal(38, 12) comes back with its scale's trailing zeros: amounts as the stream wrote them.
            money = {c for c, t in zip(res.columns, res.types, strict=True) if t.startswith("Decimal")}
            for values in res.rows:
                row = dict(zip(res.columns, values, strict=True))
                obj = {c: (row[c] if not (c in _OPTIONAL_TEXT and row[c] == "") else None) for c in fields}
                for c in money & obj.keys():
                    obj[c] = canonical(Decimal(str(obj[c])))
                yield obj
            if len(res.rows) < PAGE:
                return
            offset += PAGE


class BudgetBackfill:
    """Back-fills new budgets from ``cost.ledger`` while the worker runs."""

    def __init__(self, *, files: MoneyFiles, kafka: KafkaSettings, target: KafkaTarget, ledger_topic: str,
                 contributions_topic: str, markers_topic: str, partitions: int, clock: Clock,
                 send: Callable[..., Any], ledger: ClickHouseLedger | None = None) -> None:
        self.files = files
        self.ledger = ledger
        self.kafka = kafka
        self.target = target
        self.ledger_topic = ledger_topic
        self.contributions_topic = contributions_topic
        self.markers_topic = markers_topic
        self.partitions = partitions
        self.clock = clock
        self.send = send  # the worker's producer: send(topic, key, value, partition, timestamp, headers)
        self.done: dict[str, str] | None = None  # budget id -> matching key back-filled (None: not read yet)
        self._task: asyncio.Task[int] | None = None
        self._retry_at = 0.0

    def maybe_start(self, ready: bool) -> None:
        """Start a backfill in the background when the worker is ready and a budget needs one.

        Called from the gauge timer. Without budgets it does nothing at all (no consumer, no
        marker read), so a worker without a budgets file behaves exactly as before.
        """
        loop = asyncio.get_running_loop()
        if not ready or not self.files.budgets.budgets or loop.time() < self._retry_at:
            return
        if self._task is not None and not self._task.done():
            return
        if self.done is not None and not self.pending():
            return
        self._task = loop.create_task(self._run())

    async def _run(self) -> int:
        try:
            return await self.run_once()
        except asyncio.CancelledError:
            raise
        except Exception:  # retried: a new budget must not stay uncounted, nor stop the worker
            log.exception("budget backfill failed; retrying in 5 s")
            self._retry_at = asyncio.get_running_loop().time() + 5
            return 0

    def pending(self) -> list[Budget]:
        """Budgets whose current matching rules have not been back-filled."""
        done = self.done or {}
        return [b for b in self.files.budgets.budgets if done.get(b.id) != matching_key(b)]

    async def run_once(self) -> int:
        """Back-fill every pending budget; returns the contributions produced."""
        if self.done is None:
            self.done = await self._read_markers()
        budgets = self.pending()
        if not budgets:
            return 0
        names = ", ".join(b.id for b in budgets)
        log.info("budget backfill: counting earlier spend of %s from %s", names, self.ledger_topic)
        since = scan_start(budgets, self.clock())
        rows, produced = await self._scan_clickhouse(budgets, since)
        topic_rows, topic_produced = await self._scan(budgets, since)
        rows, produced = rows + topic_rows, produced + topic_produced
        futures = [await self.send(self.markers_topic, b.id.encode(),
                                   orjson.dumps({"budget_id": b.id, "key": matching_key(b), "rows": rows,
                                                 "contributions": produced, "at": self.clock().isoformat()}),
                                   0, None, None)
                   for b in budgets]
        await asyncio.gather(*futures)
        for b in budgets:
            self.done[b.id] = matching_key(b)
        telemetry.BUDGET_BACKFILLS.inc(len(budgets))
        log.info("budget backfill of %s done: %d cost rows read, %d contributions", names, rows, produced)
        return produced

    async def _scan_clickhouse(self, budgets: list[Budget], since: datetime) -> tuple[int, int]:
        """Contributions of the cost rows ClickHouse holds (nothing when it cannot be queried)."""
        if self.ledger is None:
            return 0, 0
        rows = produced = 0
        packs: dict[int, list[Any]] = {}
        async for obj in self.ledger.rows(since):
            rows += 1
            try:
                cost = CostEntry.model_validate(obj)
            except ValidationError:
                log.warning("budget backfill: cost_ledger row %s does not validate; skipped", obj.get("id"))
                continue
            for c in contributions_for(budgets, cost):
                packs.setdefault(partition_for(c.budget_id.encode(), self.partitions), []).append(
                    c.model_dump(mode="json"))
            if sum(len(v) for v in packs.values()) >= PAGE:
                produced += await self._produce(packs)
                packs = {}
        produced += await self._produce(packs)
        log.info("budget backfill: %d cost rows read from ClickHouse since %s", rows, since.isoformat())
        return rows, produced

    async def _read_markers(self) -> dict[str, str]:
        tp = TopicPartition(self.markers_topic, 0)
        end = (await true_highwaters(self.kafka, self.target.bootstrap, [tp])).get(tp, 0)
        done: dict[str, str] = {}
        if end == 0:
            return done
        consumer = make_consumer(self.kafka, self.target, group_id=None)
        await consumer.start()
        try:
            consumer.assign([tp])
            await consumer.seek_to_beginning(tp)
            while await consumer.position(tp) < end:
                for msgs in (await consumer.getmany(tp, timeout_ms=500)).values():
                    for m in msgs:
                        try:
                            marker = orjson.loads(m.value or b"")
                            done[marker["budget_id"]] = marker["key"]
                        except (orjson.JSONDecodeError, KeyError, TypeError):
                            log.warning("budget backfill: unreadable marker at offset %d ignored", m.offset)
        finally:
            await consumer.stop()
        return done

    async def _scan(self, budgets: list[Budget], since: datetime) -> tuple[int, int]:
        consumer = make_consumer(self.kafka, self.target, group_id=None, max_poll_records=2000)
        await consumer.start()
        try:
            await consumer.topics()  # loads the metadata partitions_for_topic reads
            tps = [TopicPartition(self.ledger_topic, p)
                   for p in sorted(consumer.partitions_for_topic(self.ledger_topic) or ())]
            ends = await true_highwaters(self.kafka, self.target.bootstrap, tps)
            starts = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in tps})
            todo = {tp: ends[tp] for tp in tps if starts.get(tp) is not None and starts[tp].offset < ends[tp]}
            if not todo:
                return 0, 0
            consumer.assign(list(todo))
            for tp in todo:
                consumer.seek(tp, starts[tp].offset)
            rows = produced = 0
            while todo:
                batch = await consumer.getmany(*todo, timeout_ms=500)
                packs: dict[int, list[Any]] = {}
                for tp, msgs in batch.items():
                    for m in msgs:
                        if m.offset >= todo.get(tp, -1):
                            continue
                        rows += 1
                        try:
                            cost = CostEntry.model_validate_json(m.value or b"")
                        except ValidationError:
                            continue  # the fan-out dead-letters it; nothing to count here
                        for c in contributions_for(budgets, cost):
                            packs.setdefault(partition_for(c.budget_id.encode(), self.partitions), []).append(
                                c.model_dump(mode="json"))
                for tp in list(todo):
                    if await consumer.position(tp) >= todo[tp]:
                        del todo[tp]
                produced += await self._produce(packs)
            return rows, produced
        finally:
            await consumer.stop()

    async def _produce(self, packs: dict[int, list[Any]]) -> int:
        futures = []
        n = 0
        for partition, objs in packs.items():
            for i in range(0, len(objs), PACK_MAX):
                futures.append(await self.send(self.contributions_topic, b"pack",
                                               orjson.dumps(objs[i:i + PACK_MAX]), partition, None, None))
            n += len(objs)
        await asyncio.gather(*futures)
        telemetry.BUDGET_BACKFILL_CONTRIBUTIONS.inc(n)
        return n
