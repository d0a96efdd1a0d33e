"""Kafka's default partitioner, for messages whose partition the processors choose themselves."""

from __future__ import annotations

from aiokafka.partitioner import murmur2


def partition_for(key: bytes, partitions: int) -> int:
    """The partition Kafka's default partitioner gives ``key`` (murmur2, positive, modulo)."""
    return (murmur2(key) & 0x7FFFFFFF) % partitions
