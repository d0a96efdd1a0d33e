"""The AxonFlow audit poller's paging against AxonFlow's search rules (the fake of fake_axonflow.py)."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from pathlib import Path

import aiohttp
import pytest
from aiohttp.test_utils import TestServer

from gateledger.masking import Masker
from gateledger.settings import Settings
from producers.axonflow.poller import AuditPollError, AxonFlowAuditPoller
from producers.axonflow.settings import AxonFlowPollerSettings
from producers.publisher import Publisher
from tests.producers.fake_axonflow import FakeAxonFlow
from tests.stream_processors.harness import ensure_topics


def _row(n: int, at: datetime) -> dict:
    return {"id": f"audit_{n}", "request_id": f"req-{n}", "timestamp": at.isoformat(), "client_id": "acme",
            "tenant_id": "acme", "request_type": "chat", "policy_decision": "allowed", "provider": "openai",
            "model": "gpt-4o", "response_time_ms": 5, "tokens_used": 10, "cost": 0.0001}


def test_pages_are_cut_by_end_time_and_a_timestamp_fuller_than_a_page_is_an_error(
        settings: Settings, tmp_path: Path) -> None:
    target = asyncio.run(ensure_topics(settings))
    api = FakeAxonFlow()
    t = datetime.now(UTC) - timedelta(minutes=10)
    # Five rows, two of them at one instant: pages of three still read every row once.
    api.audit_trail = [_row(1, t), _row(2, t + timedelta(seconds=1)), _row(3, t + timedelta(seconds=1)),
                       _row(4, t + timedelta(seconds=2)), _row(5, t + timedelta(seconds=3))]

    async def poll(page_size: int, ckpt: str) -> int:
        async with TestServer(api.app(), host="127.0.0.1") as upstream, \
                Publisher(settings.kafka, target, timeout_s=8) as pub, aiohttp.ClientSession() as session:
            ps = AxonFlowPollerSettings(url=str(upstream.make_url("")), client_id="acme", client_secret="s",
                                        tenant="acme", page_size=page_size)
            return await AxonFlowAuditPoller(ps, pub, Masker(salt=b"s"), session, tmp_path / ckpt).poll_once()

    assert asyncio.run(poll(3, "a")) == 5
    searches = [s for s in api.seen if s[1] == "/api/v1/audit/search"]
    assert len(searches) >= 3 and all(b'"offset"' not in body for *_, body in searches), "no offset is sent"
    # As many rows at one instant as a page holds: the ones past it cannot be reached; an error, not a skip.
    api.audit_trail.append(_row(6, t + timedelta(seconds=1)))
    with pytest.raises(AuditPollError, match="GATELEDGER_AXONFLOW_PAGE_SIZE"):
        asyncio.run(poll(3, "b"))
    assert not (tmp_path / "b" / "axonflow-audit.json").exists(), "no checkpoint moved"


def test_a_server_applying_no_filter_and_no_limit_is_read_once(settings: Settings, tmp_path: Path) -> None:
    """The stored SearchAuditLogs (audit_logger.go) type-asserts its criteria to an untagged struct the
    handler's tagged one is not: no WHERE, no ORDER BY, no LIMIT. The poller keeps the window itself."""
    target = asyncio.run(ensure_topics(settings))
    api = FakeAxonFlow()
    t = datetime.now(UTC) - timedelta(minutes=10)
    api.audit_trail = [_row(n, t + timedelta(seconds=n)) for n in range(4)]
    api.audit_trail.append(_row(9, datetime.now(UTC) - timedelta(days=3)))  # before the window
    api.search_applies_criteria = False

    async def poll() -> int:
        async with TestServer(api.app(), host="127.0.0.1") as upstream, \
                Publisher(settings.kafka, target, timeout_s=8) as pub, aiohttp.ClientSession() as session:
            ps = AxonFlowPollerSettings(url=str(upstream.make_url("")), client_id="acme", client_secret="s",
                                        tenant="acme", page_size=2)
            return await AxonFlowAuditPoller(ps, pub, Masker(salt=b"s"), session, tmp_path / "c").poll_once()

    assert asyncio.run(poll()) == 4, "the rows of the window, once; the 3-day-old row is outside it"
