"""The processors' murmur2 is Kafka's: the same hash as aiokafka's reference implementation."""

from __future__ import annotations

from aiokafka.partitioner import murmur2 as reference
from hypothesis import given, settings
from hypothesis import strategies as st

from stream_processors.common.partitioning import murmur2, partition_for


@settings(max_examples=2000, deadline=None)
@given(st.binary(max_size=200))
def test_murmur2_equals_the_reference_for_any_bytes(data: bytes) -> None:
    assert murmur2(data) == reference(data)


def test_known_keys_land_where_the_java_client_puts_them() -> None:
    # Every tail length (0-3 bytes after the last whole word), bytes with the high bit set.
    for key in (b"", b"a", b"ab", b"abc", b"abcd", b"\xff" * 7, "tenant|req-1".encode()):
        assert murmur2(key) == reference(key)
        assert partition_for(key, 4) == (reference(key) & 0x7FFFFFFF) % 4
