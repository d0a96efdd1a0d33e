"""The normalize stage takes on each raw topic only the envelope types gateledger/topics.py lists for it, each
by the one method marked for it (dispatch.py)."""

from __future__ import annotations

import pytest

from gateledger.clock import ManualClock
from gateledger.contracts.envelope import Envelope
from gateledger.masking import Masker
from gateledger.topics import SOURCES, EventType, Topic
from stream_processors.local import LocalPipeline
from stream_processors.normalize.dispatch import handler_table, handles
from stream_processors.normalize.stage import NormalizePartition, RawTopics
from stream_processors.settings import ProcessorSettings
from tests import samples
from tests.stream_processors.harness import envelope
from tests.stream_processors.traffic import T0


def _feed(topic: str, fmt: str, record: dict) -> dict[str, list[dict]]:
    pl = LocalPipeline(settings=ProcessorSettings(idle_advance_s=1, lateness_s=1), clock=ManualClock(T0))
    pl.feed([(topic, b"k", envelope(fmt, record).envelope.model_dump_json().encode())])
    return pl.by_topic()


def test_a_type_on_another_sources_topic_is_dead_lettered_not_normalized() -> None:
    out = _feed("raw.obot.mcp", "axonflow-precheck", samples.precheck())
    (dl,) = out[str(Topic.DEAD_LETTERS)]
    assert dl["reason"] == "unknown_type" and "axonflow.precheck" in dl["error"]
    assert not out.get(str(Topic.POLICY_DECISIONS))


def test_a_cloudevent_named_like_an_obot_record_is_not_taken_for_one() -> None:
    out = _feed("raw.cloudevents", "obot-audit", samples.obot_flat())
    assert not out.get(str(Topic.MCP_CALLS)), "a custom gateway must not publish Obot MCP calls"


def test_every_listed_type_has_a_handler_and_no_handler_is_unlisted(monkeypatch: pytest.MonkeyPatch) -> None:
    part = NormalizePartition(0, ProcessorSettings(), RawTopics.with_prefix(""), Masker(salt=b"s"),
                              ManualClock(T0))
    assert set(part._handlers) == {t for s in SOURCES for t in s.types}
    trimmed = tuple(s if s.topic != Topic.RAW_AXONFLOW else type(s)(s.topic, s.system, s.formats, s.types[:-1])
                    for s in SOURCES)
    monkeypatch.setattr("stream_processors.normalize.stage.SOURCES", trimmed)
    with pytest.raises(RuntimeError, match="gateledger/topics.py"):
        part._handler_table()


def test_a_type_marked_on_two_methods_or_on_none_stops_the_stage() -> None:
    class Twice(NormalizePartition):
        @handles(EventType.AXONFLOW_LLM_AUDIT)
        def _another_audit(self, env: Envelope, t_us: int, rcv: int) -> None:
            """A second handler of a type ``axonflow.py`` already takes."""

    with pytest.raises(RuntimeError, match="handled by both"):
        handler_table(Twice.__new__(Twice), SOURCES)

    class Unmarked:
        @handles(EventType.OBOT_LLM_CALL)
        def _llm(self, env: Envelope, t_us: int, rcv: int) -> None:
            """The only handler: every other listed type has none."""

    with pytest.raises(RuntimeError, match="gateledger/topics.py lists"):
        handler_table(Unmarked(), SOURCES)
