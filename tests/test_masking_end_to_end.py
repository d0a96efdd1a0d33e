"""Property, end to end: secrets and PII planted in random places of random upstream records (and in the
envelope's identity: CloudEvent source, ids that become Kafka keys) go through ingest (producers/accept.py),
the real broker, the processors worker and the sink into chDB; then every message on every topic of the
test (values AND keys, read back from the broker) and every text column of every table is searched for
them, however encoded. The pure masking function gets 7,300 Hypothesis cases in
tests/gateledger/test_masking_properties.py (5,000 planted records, 2,000 cut short, 300 of free text);
here one batch from the same generator, drawn from a random seed (printed;
GATELEDGER_TEST_MASKING_SEED replays it), makes the round trip: over 10,000 planted cases, many per record
(each in its own random place and encoding), ingested in batches so the round trip stays cheap.
"""

from __future__ import annotations

import asyncio
import json
import os
import random
import time
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer
from gateledger import jsonutil
from gateledger.kafka import common_config, consumer_group_lag, resolve
from gateledger.masking import Masker
from gateledger.settings import Settings
from gateledger.topics import RAW_TOPICS, topic_name
from producers.accept import RawRecord, accept, parse_body
from producers.accept import IngestContext
from producers.publisher import Publisher
from sinks.clickhouse.main import run_sink
from sinks.clickhouse.settings import SinkSettings
from tests import samples
from tests.conftest import Processes
from tests.planted import SHAPED, _opaque, found, random_records
from tests.sinks.conftest import wait_caught_up
from tests.sinks.clickhouse.test_secrets_never_land import text_columns
from tests.stream_processors.harness import ensure_topics, read_messages, start_worker

RECORDS = 400
PLANTS = 25  # per record: RECORDS * PLANTS planted cases (issue 15: at least 10,000)
CANARY = "canary-visible-after-masking"


def identity_plants(seed: int) -> tuple[list[tuple[str, dict[str, Any]]], list[str]]:
    """Records whose envelope identity carries the secret: a CloudEvent source with ``user:pass@``, emails
    as request, session and user ids (which become Kafka keys and envelope fields)."""
    rnd = random.Random(seed)
    password, email, email2, email3 = _opaque(rnd, 20), SHAPED["email"](rnd), SHAPED["email"](rnd), SHAPED["email"](rnd)
    records = [
        ("cloudevents", samples.cloudevent(id=f"evt-{seed}", source=f"https://gw:{password}@gw.example.com/events",
                                           requestid=email, subject=email2, data={"note": CANARY})),
        ("obot-llm", samples.obot_llm(id=f"llm-{seed}", requestID=email, userID=email2)),
        ("obot-audit", samples.obot_flat(id=seed, sessionID=email3, userID=email)),
    ]
    return records, [password, email, email2, email3]


def unique(fmt: str, record: dict[str, Any], n: int) -> dict[str, Any]:
    """The record with its own upstream id: one event each, none collapsing onto another in ClickHouse
    (appended to, not replaced: a plant may sit in the id's text)."""
    if fmt == "obot-audit":
        record["id"] = 5000 + n
    elif fmt in ("obot-audit-event", "obot-llm", "cloudevents"):
        record["id"] = f"{record['id']}-{n}"
    elif fmt in ("axonflow-precheck", "axonflow-llm-call"):
        part = record["response" if fmt == "axonflow-precheck" else "request"]
        part["context_id"] = f"{part['context_id']}-{n}"
    return record


async def ingest(settings: Settings, batch: list[tuple[str, dict[str, Any]]]) -> tuple[int, set[str]]:
    """Publish the batch as every ingest path does, one request per format (and a truncated copy of some:
    dead letters); how many were accepted, and their event ids."""
    masker = Masker(salt=b"test-salt")
    ctx = IngestContext(masker=masker, tenant="acme", install="planted")
    accepted, ids = 0, set()
    by_format: dict[str, list[dict[str, Any]]] = {}
    for fmt, record in batch:
        by_format.setdefault(fmt, []).append(record)
    async with Publisher(settings.kafka, resolve(settings.kafka, settings.core)) as pub:
        for fmt, records in by_format.items():
            raw = [RawRecord(i, value=r) for i, r in enumerate(records)]
            result = await accept(pub, fmt, raw, ctx, f"test:{fmt}")
            accepted += result.accepted
            ids.update(result.event_ids)
        for i, (fmt, record) in enumerate(batch):
            if i % 20 == 0:  # broken JSON: the dead letter's original gets the key rules as text
                await accept(pub, fmt, parse_body(json.dumps(record)[:-9].encode()), ctx, f"test:{fmt}")
    return accepted, ids


async def read_everything(settings: Settings, app_id: str) -> list[tuple[str, str | None, Any]]:
    """(topic, key, value) of every message on every topic of this test (the processors' internal topics
    too), from the beginning to the true end."""
    target = resolve(settings.kafka, settings.core)
    consumer = AIOKafkaConsumer(**common_config(settings.kafka, target.bootstrap), group_id=None)
    await consumer.start()
    try:
        names = [t for t in await consumer.topics() if t.startswith(target.topic_prefix) or app_id in t]
    finally:
        await consumer.stop()
    out: list[tuple[str, str | None, Any]] = []
    for m in await read_messages(settings, names):
        raw = m.value.decode("utf-8", "replace") if m.value is not None else ""
        try:
            value: Any = jsonutil.loads(raw)
        except ValueError:
            value = raw
        out.append((m.topic, m.key.decode("utf-8", "replace") if m.key is not None else None, value))
    return out


def land(settings: Settings, ch_client: Any, accepted: int, app_id: str) -> None:
    """The sink runs until the raw events landed, the processors consumed everything and it caught up."""
    db = settings.clickhouse.database
    target = resolve(settings.kafka, settings.core)
    raw_topics = [topic_name(t, target.topic_prefix) for t in RAW_TOPICS]

    async def main() -> None:
        stop = asyncio.Event()
        sink = asyncio.create_task(run_sink(settings, stop))
        try:
            deadline = time.monotonic() + 90
            while time.monotonic() < deadline:
                (n,), = (await asyncio.to_thread(ch_client.query, f"SELECT uniqExact(id) FROM {db}.raw_events")).result_rows
                lag = await consumer_group_lag(settings.kafka, target.bootstrap, app_id, raw_topics)
                if n >= accepted and lag and sum(p.lag for p in lag) == 0:
                    break
                await asyncio.sleep(0.5)
            await wait_caught_up(settings, SinkSettings())
        finally:
            stop.set()
            await sink

    asyncio.run(main())


def test_no_planted_secret_in_kafka_or_clickhouse(settings: Settings, gl_env: dict[str, str], processes: Processes,
                                                  tmp_path: Path, ch_client) -> None:
    seed = int(os.environ.get("GATELEDGER_TEST_MASKING_SEED") or random.randrange(2**32))
    print(f"GATELEDGER_TEST_MASKING_SEED={seed}")
    batch = random_records(seed, RECORDS, plants=PLANTS)
    assert sum(len(ss) for _, _, ss in batch) >= 10_000
    asyncio.run(ensure_topics(settings))
    identity, identity_secrets = identity_plants(seed)
    records = [(fmt, unique(fmt, record, i)) for i, (fmt, record, _) in enumerate(batch)] + identity
    secrets = sorted({s for _, _, ss in batch for s in ss} | set(identity_secrets))
    assert found([r for _, r in records], secrets) == secrets, "every plant is readable before masking"
    accepted, ids = asyncio.run(ingest(settings, records))
    assert accepted >= len(records) // 2, "most planted records are valid upstream records"
    app_id = gl_env["GATELEDGER_PROCESSORS_APP_ID"]
    start_worker(processes, gl_env, tmp_path, interaction_timeout_s=2, unaudited_grace_s=0)
    land(settings, ch_client, len(ids), app_id)

    messages = asyncio.run(read_everything(settings, app_id))
    topics = {t for t, _, _ in messages}
    assert any(t.endswith("raw.cloudevents") for t in topics) and any(t.endswith("dead.letters") for t in topics)
    assert found([k for _, k, _ in messages if k], secrets) == [], "Kafka keys"
    # One pass for both: the canary shows the search sees the data it searches.
    assert found([v for _, _, v in messages], [*secrets, CANARY]) == [CANARY], "Kafka values"

    db = settings.clickhouse.database
    (raw,), = ch_client.query(f"SELECT uniqExact(id) FROM {db}.raw_events").result_rows
    assert raw == len(ids)
    cells: list[str] = []
    for table, column, _ in text_columns(ch_client, db):
        cells += [r[0] for r in ch_client.query(f"SELECT toString(`{column}`) FROM {db}.`{table}`").result_rows]
    assert found(cells, [*secrets, CANARY]) == [CANARY], "ClickHouse"
