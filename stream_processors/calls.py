"""Calls: the ``llm.calls`` and ``mcp.calls`` rows the normalize stage hands the cost stage, packed.

Every row normalize writes on the public call topics (for the sink) goes, the same bytes, onto one
internal topic as well, keyed and partitioned by the row id exactly as on the public topics, many
rows to a Kafka record. The cost stage reads only this topic: one record per batch and partition
instead of one per call (faust's per-record path costs ~45 µs of worker CPU, docs/benchmarks.md).

A packed record is lines, one per row: a one-byte kind (``LLM_TAG`` / ``MCP_TAG``) then the row's
JSON exactly as on the public topic. Pydantic's JSON never holds a raw newline (JSON escapes them
inside strings), so a newline always ends a row.
"""

from __future__ import annotations

from collections.abc import Iterator

from gateledger.topics import Topic

CALLS = "calls"  # logical name of the internal topic (physical: ``internal_topic_name``)
LLM_TAG, MCP_TAG = b"l", b"m"
TAGS = {str(Topic.LLM_CALLS): LLM_TAG, str(Topic.MCP_CALLS): MCP_TAG}  # public topic -> kind byte
PACK_BYTES = 256 * 1024  # a packed record stays well under the broker's message size limit


def pack(lines: list[bytes]) -> Iterator[bytes]:
    """Packed record values for tagged rows (``tag + row JSON``), each at most ~``PACK_BYTES``."""
    chunk: list[bytes] = []
    size = 0
    for line in lines:
        if chunk and size + len(line) > PACK_BYTES:
            yield b"\n".join(chunk)
            chunk, size = [], 0
        chunk.append(line)
        size += len(line) + 1
    if chunk:
        yield b"\n".join(chunk)


def unpack(value: bytes) -> Iterator[tuple[bytes, bytes]]:
    """(kind tag, row JSON) of each row of a packed record, in order."""
    for line in value.split(b"\n"):
        if line:
            yield line[:1], line[1:]
