"""The processors' state carried across a broker recycle: their changelogs, compacted, put back.

A recycle restarts the embedded broker empty (docs/operations.md, "Memory of the embedded
broker"), and the processors keep their state only in their faust changelogs, on that broker. The
re-drive rebuilds the interactions that had not landed, but every emitted interaction, joined
context and dedup entry older than the last recycle was gone: late evidence older than a recycle
(~23 minutes at half the maximum rate) found nothing. So, once a recycle has drained (every stage
caught up and the sink landed everything), the supervisor reads every changelog to its true high
watermark into a file in the data dir, keeping the newest value per key (tombstones drop the key:
compaction, which Tansu's memory engine never does), and after the broker restarts it writes them
back to the same partitions, in their original order, before the processors start. The processors
then recover their tables from the changelogs exactly as after a restart of their own.

Only a fully drained recycle carries state: when the drain timed out, the later stages' input
topics may have held messages that die with the broker, and only a replay into empty state (the
re-drive) recomputes them. A failure while carrying falls back to that as well (nothing is lost:
the re-drive covers what had not landed, as before).
"""

from __future__ import annotations

import asyncio
import sqlite3
import time
from collections.abc import Callable
from pathlib import Path

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from gateledger.kafka import KafkaTarget, common_config, ensure_topics, make_producer, true_highwaters
from gateledger.settings import KafkaSettings
from gateledger.topics import TopicSpec

SUFFIX = "-changelog"  # faust names a table's changelog <app id>-<table>-changelog
FILE = "changelogs.sqlite"  # in the data dir, only between a recycle's stop and the processors' start


async def changelog_partitions(kafka: KafkaSettings, bootstrap: str, prefix: str) -> dict[str, int]:
    """Every faust changelog topic of this stack's prefix, with its partition count."""
    admin = AIOKafkaAdminClient(**common_config(kafka, bootstrap))
    await admin.start()
    try:
        names = [t for t in await admin.list_topics() if t.startswith(prefix) and t.endswith(SUFFIX)]
        meta = await admin.describe_topics(names) if names else []
    finally:
        await admin.close()
    return {t["topic"]: len(t["partitions"]) for t in meta}


def _open(path: Path) -> sqlite3.Connection:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode=OFF")  # a scratch file: a crash mid-save falls back to the re-drive
    db.execute("PRAGMA synchronous=OFF")
    db.execute("CREATE TABLE IF NOT EXISTS topics (topic TEXT PRIMARY KEY, partitions INTEGER)")
    db.execute("CREATE TABLE IF NOT EXISTS entries (topic TEXT, partition INTEGER, key BLOB, value BLOB,"
               " offset INTEGER, PRIMARY KEY (topic, partition, key))")
    return db


async def save(kafka: KafkaSettings, bootstrap: str, prefix: str, path: Path,
               progress: Callable[[str], None], batch: int = 5000) -> int:
    """Read every changelog of the stack to its true high watermark into ``path``, newest value per
    key; returns the entries kept."""
    t0 = time.monotonic()
    topics = await changelog_partitions(kafka, bootstrap, prefix)
    path.unlink(missing_ok=True)
    db = _open(path)
    db.executemany("INSERT INTO topics VALUES (?, ?)", list(topics.items()))
    tps = [TopicPartition(t, p) for t, n in topics.items() for p in range(n)]
    high = await true_highwaters(kafka, bootstrap, tps)
    todo = {tp for tp in tps if high.get(tp, 0) > 0}
    consumer = AIOKafkaConsumer(**common_config(kafka, bootstrap), enable_auto_commit=False, group_id=None,
                                auto_offset_reset="earliest", max_partition_fetch_bytes=4 << 20)
    await consumer.start()
    read = 0
    try:
        if todo:
            consumer.assign(sorted(todo, key=lambda tp: (tp.topic, tp.partition)))
            await consumer.seek_to_beginning(*todo)
        while todo:
            got = await consumer.getmany(*todo, timeout_ms=500, max_records=batch)
            for tp, msgs in got.items():
                # In offset order within a partition: a put then a delete of one key ends deleted.
                for m in msgs:
                    if m.value is None:
                        db.execute("DELETE FROM entries WHERE topic=? AND partition=? AND key=?",
                                   (tp.topic, tp.partition, m.key))
                    else:
                        db.execute("INSERT OR REPLACE INTO entries VALUES (?, ?, ?, ?, ?)",
                                   (tp.topic, tp.partition, m.key, m.value, m.offset))
                read += len(msgs)
                if msgs and msgs[-1].offset + 1 >= high[tp]:
                    todo.discard(tp)
    finally:
        await consumer.stop()
    db.commit()
    kept = db.execute("SELECT count() FROM entries").fetchone()[0]
    db.close()
    progress(f"  recycle: processor state saved, {kept:,} entr(ies) of {read:,} changelog record(s) "
             f"in {len(topics)} table(s) ({time.monotonic() - t0:.1f}s)")
    return int(kept)


async def restore(kafka: KafkaSettings, target: KafkaTarget, path: Path, replication_factor: int,
                  progress: Callable[[str], None]) -> int:
    """Create the saved changelogs on the (new, empty) broker and write the saved entries back in
    their original order; removes ``path``; returns the entries written."""
    t0 = time.monotonic()
    db = _open(path)
    topics = dict(db.execute("SELECT topic, partitions FROM topics").fetchall())
    # As faust declares them (compacted); created here first, so faust finds them and reads them.
    await ensure_topics(kafka, target.bootstrap, [TopicSpec(t, n, replication_factor, {"cleanup.policy": "compact"})
                                                  for t, n in topics.items()])
    producer = make_producer(kafka, target)
    await producer.start()
    written = 0
    try:
        rows = db.execute("SELECT topic, partition, key, value FROM entries ORDER BY topic, partition, offset")
        pending: list[asyncio.Future[object]] = []
        for topic, partition, key, value in rows:
            pending.append(await producer.send(topic, value, key=key, partition=partition))
            written += 1
            if len(pending) >= 5000:
                await asyncio.gather(*pending)
                pending.clear()
        await asyncio.gather(*pending)
    except BaseException:
        # A part of the state is worse than none (a table restored without its peers would drop
        # re-driven events as duplicates of work it no longer holds): no changelog, empty state.
        await _delete_topics(kafka, target.bootstrap, list(topics))
        raise
    finally:
        await producer.stop()
        db.close()
    path.unlink(missing_ok=True)
    progress(f"  recycle: processor state restored, {written:,} entr(ies) ({time.monotonic() - t0:.1f}s)")
    return written


async def saved(kafka: KafkaSettings, bootstrap: str, prefix: str, data_dir: Path,
                progress: Callable[[str], None]) -> Path | None:
    """``save`` into the data dir; None (said why) when it failed: the processors then start empty."""
    path = data_dir / FILE
    try:
        await save(kafka, bootstrap, prefix, path, progress)
    except Exception as exc:  # empty state behind the re-drive, as without carrying: nothing is lost
        progress(f"  recycle: processor state not saved ({exc}); the processors restart empty")
        path.unlink(missing_ok=True)
        return None
    return path


async def restored(kafka: KafkaSettings, target: KafkaTarget, path: Path, progress: Callable[[str], None]) -> None:
    """``restore`` the saved state; on failure (said why) the processors start empty, never partial."""
    try:
        await restore(kafka, target, path, kafka.replication_factor, progress)
    except Exception as exc:  # restore() left no changelog behind: empty state behind the re-drive
        progress(f"  recycle: processor state not restored ({exc}); the processors restart empty")
    finally:
        path.unlink(missing_ok=True)


async def _delete_topics(kafka: KafkaSettings, bootstrap: str, topics: list[str]) -> None:
    admin = AIOKafkaAdminClient(**common_config(kafka, bootstrap))
    await admin.start()
    try:
        await admin.delete_topics(topics)
    finally:
        await admin.close()
