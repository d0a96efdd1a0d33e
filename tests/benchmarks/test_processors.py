"""The processors' benchmark traffic: the simulator's records through the real formats, every raw topic
fed, nothing dead-lettered by the stage logic (a benchmark of refusals would measure the wrong path)."""

from __future__ import annotations

from collections import Counter

from benchmarks.processors import T0, bench_logic, raw_messages
from gateledger.clock import ManualClock
from gateledger.topics import Topic, topic_name
from stream_processors.local import LocalPipeline
from stream_processors.settings import ProcessorSettings


def test_the_traffic_feeds_every_simulated_raw_topic_and_is_processed_without_dead_letters() -> None:
    msgs = raw_messages(300, seed=4)
    topics = Counter(t for t, _, _ in msgs)
    assert set(topics) == {topic_name(t) for t in (Topic.RAW_AXONFLOW, Topic.RAW_OBOT_MCP, Topic.RAW_OBOT_WEBHOOK,
                                                   Topic.RAW_OBOT_LLM, Topic.RAW_CLOUDEVENTS)}
    assert raw_messages(300, seed=4) == msgs and raw_messages(300, seed=5) != msgs
    pl = LocalPipeline(settings=ProcessorSettings(idle_advance_s=0), clock=ManualClock(T0))
    pl.feed(msgs)
    out = pl.by_topic()
    assert str(Topic.DEAD_LETTERS) not in out
    assert all(out.get(str(t)) for t in (Topic.LLM_CALLS, Topic.MCP_CALLS, Topic.INTERACTIONS, Topic.POLICY_DECISIONS))


def test_the_logic_figure_counts_the_messages_it_fed() -> None:
    result = bench_logic(interactions=200, runs=1, seed=4)
    assert result["events"] == len(raw_messages(200, seed=4)) and result["facts"] > 0 and result["outputs"] > 0
