"""Every upstream format by name becomes a canonical envelope: deterministic id, event time, keys, masked data."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from gateledger.topics import RAW_SOURCE, Format
from producers import accept
from producers.accept import InvalidRecord, formats, get_format
from tests import samples
from tests.samples import ctx


@pytest.mark.parametrize("fmt", sorted(formats()))
def test_each_format_is_deterministic(fmt: str) -> None:
    build = samples.ALL_FORMATS[fmt]
    a = get_format(fmt)(build(), ctx())
    b = get_format(fmt)(build(), ctx(received_at=datetime(2027, 1, 1, tzinfo=UTC)))
    assert a.envelope.id == b.envelope.id, "re-publishing the same record must give the same id"
    assert a.envelope.time.tzinfo is not None
    assert a.key
    # The registry says where each format publishes and what the normalize stage accepts there.
    source = RAW_SOURCE[a.topic]
    assert fmt in source.formats, f"{fmt} published to {a.topic}, which gateledger/topics.py does not list it for"
    assert not source.types or a.envelope.type in source.types


def test_registry_refuses_a_system_mapping_other_formats_than_it_lists() -> None:
    by_system = accept._by_system()
    by_system["axonflow"] = dict(by_system["axonflow"])
    del by_system["axonflow"][Format.AXONFLOW_AUDIT_ENTRY]
    with pytest.raises(RuntimeError, match="producers/axonflow/formats.py"):
        accept._collect(by_system)


@pytest.mark.parametrize(
    ("fmt", "record", "reason"),
    [
        ("obot-audit", [1, 2], "schema"),
        ("obot-audit", {"createdAt": "not a time"}, "schema"),
        ("obot-llm", {"createdAt": "2026-01-01T00:00:00Z"}, "schema"),
        ("obot-webhook", {"jsonrpc": "2.0"}, "schema"),
        ("axonflow-precheck", {"response": {}}, "schema"),
        ("axonflow-llm-call", {"request": {"context_id": "c"}}, "schema"),
        ("cloudevents", {"specversion": "1.0", "id": "", "source": "s", "type": "t"}, "schema"),
    ],
)
def test_invalid_records_are_explained(fmt: str, record: object, reason: str) -> None:
    with pytest.raises(InvalidRecord) as err:
        get_format(fmt)(record, ctx())
    assert err.value.reason == reason and str(err.value)


def test_unknown_format() -> None:
    with pytest.raises(ValueError, match="one of"):
        get_format("nope")
