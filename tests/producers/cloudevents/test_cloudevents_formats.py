"""The CloudEvents format (producers/cloudevents/formats.py)."""

from __future__ import annotations

from producers.accept import get_format
from tests import samples
from tests.samples import ctx


def test_cloudevents_extensions() -> None:
    env = get_format("cloudevents")(samples.cloudevent(), ctx()).envelope
    assert env.tenant == "acme" and env.request_id == "req-1" and env.type == "gateledger.llm.call"
