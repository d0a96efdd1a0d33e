"""Running the real ingest application against the real broker in a test (helper)."""

from __future__ import annotations

import hashlib
import hmac
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

from aiohttp.test_utils import TestClient, TestServer

from gateledger.kafka import KafkaTarget, ensure_gateledger_topics, resolve
from gateledger.masking import Masker
from gateledger.settings import KafkaSettings, Settings
from producers.ingest.server import build_app
from producers.ingest.settings import IngestSettings
from producers.publisher import Publisher

SALT = b"test-salt"


@asynccontextmanager
async def ingest_client(
    settings: Settings, ingest: IngestSettings | None = None, target: KafkaTarget | None = None,
    kafka: KafkaSettings | None = None, **app_kw: Any
) -> AsyncIterator[TestClient]:
    """A test client of the ingest app publishing to this test's topics."""
    ingest = ingest or IngestSettings()
    kafka = kafka or settings.kafka
    target = target or resolve(kafka, settings.core)
    await ensure_gateledger_topics(kafka, target)
    async with Publisher(kafka, target, timeout_s=ingest.publish_timeout_s,
                         max_record_bytes=ingest.max_record_bytes) as pub:
        app = build_app(pub, ingest, Masker(salt=SALT), **app_kw)
        async with TestClient(TestServer(app, host="127.0.0.1")) as client:
            yield client


def sign(secret: str, body: bytes, prefix: bool = True) -> str:
    """An X-Obot-Signature-256 value, as Obot computes it."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return f"sha256={digest}" if prefix else digest
