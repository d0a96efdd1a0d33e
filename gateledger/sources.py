"""Every upstream source gateledger reads, listed once: its raw topic, its wire formats, its envelope types.

The producers derive their formats from it (``producers/accept.py``: each name here is mapped by the
folder of its system, ``producers/<system>/formats.py``), the normalize stage derives the raw topics it
reads and its dispatch from it (``stream_processors/normalize/stage.py``). Adding a gateway is one entry
here plus one folder under ``producers/``, one module under ``stream_processors/normalize/``.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from gateledger.contracts.envelope import EventType
from gateledger.topics import RAW_TOPICS, Topic


class Format(StrEnum):
    """Names of the wire formats (``gateledger ingest --format``, ``POST /v1/ingest/{format}``)."""

    OBOT_AUDIT = "obot-audit"
    OBOT_AUDIT_EVENT = "obot-audit-event"
    OBOT_LLM = "obot-llm"
    OBOT_EXPORT = "obot-export"
    OBOT_WEBHOOK = "obot-webhook"
    AXONFLOW_PRECHECK = "axonflow-precheck"
    AXONFLOW_LLM_CALL = "axonflow-llm-call"
    AXONFLOW_GOVERNANCE = "axonflow-governance"
    AXONFLOW_AUDIT_ENTRY = "axonflow-audit-entry"
    CLOUDEVENTS = "cloudevents"


@dataclass(frozen=True)
class Source:
    """One raw topic and what may arrive on it."""

    topic: Topic
    system: str  # the folder under producers/ that maps its formats
    formats: tuple[Format, ...]  # the formats whose records are published here
    # Envelope types the normalize stage accepts here; empty: the record names its own (CloudEvents).
    types: tuple[EventType, ...]


SOURCES: tuple[Source, ...] = (
    Source(Topic.RAW_OBOT_MCP, "obot", (Format.OBOT_AUDIT, Format.OBOT_AUDIT_EVENT, Format.OBOT_EXPORT),
           (EventType.OBOT_MCP_CALL, EventType.OBOT_MCP_AUDIT_EVENT, EventType.OBOT_LOCAL_AGENT_TOOL_CALL)),
    # An export holds MCP or LLM records: obot-export lands on either topic.
    Source(Topic.RAW_OBOT_LLM, "obot", (Format.OBOT_LLM, Format.OBOT_EXPORT), (EventType.OBOT_LLM_CALL,)),
    Source(Topic.RAW_OBOT_WEBHOOK, "obot", (Format.OBOT_WEBHOOK,), (EventType.OBOT_WEBHOOK_DECISION,)),
    Source(Topic.RAW_AXONFLOW, "axonflow",
           (Format.AXONFLOW_PRECHECK, Format.AXONFLOW_LLM_CALL, Format.AXONFLOW_GOVERNANCE,
            Format.AXONFLOW_AUDIT_ENTRY),
           (EventType.AXONFLOW_PRECHECK, EventType.AXONFLOW_LLM_AUDIT, EventType.AXONFLOW_DECIDE,
            EventType.AXONFLOW_MCP_CHECK, EventType.AXONFLOW_AUDIT_ENTRY)),
    Source(Topic.RAW_CLOUDEVENTS, "cloudevents", (Format.CLOUDEVENTS,), ()),
)

RAW_SOURCE: dict[Topic, Source] = {s.topic: s for s in SOURCES}
if set(RAW_SOURCE) != set(RAW_TOPICS) or len(RAW_SOURCE) != len(SOURCES):
    raise RuntimeError("gateledger/sources.py: every raw topic needs exactly one source")


def topics_of(fmt: Format | str) -> tuple[Topic, ...]:
    """The raw topics records of format ``fmt`` may be published to."""
    return tuple(s.topic for s in SOURCES if fmt in s.formats)


def formats_of(system: str) -> tuple[Format, ...]:
    """The formats the folder ``producers/<system>/`` maps, in registry order."""
    return tuple(dict.fromkeys(f for s in SOURCES if s.system == system for f in s.formats))
