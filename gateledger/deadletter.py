"""Building dead-letter records: the reason, and the original bytes with secrets masked."""

from __future__ import annotations

import hashlib
from typing import Any

from gateledger.clock import utcnow
from gateledger.contracts.events import DeadLetter
from gateledger.ids import LEGACY_TENANT, tenant_id
from gateledger.masking import Masker

# Originals above this size are truncated in the dead-letter record (the hash covers the whole).
MAX_ORIGINAL_CHARS = 256 * 1024


def make_dead_letter(
    *,
    stage: str,
    origin: str,
    reason: str,
    error: str,
    original: bytes | str,
    masker: Masker,
    tenant: str | None = None,
    kafka_topic: str | None = None,
    kafka_partition: int | None = None,
    kafka_offset: int | None = None,
    details: dict[str, Any] | None = None,
    http_status: int | None = None,
    caller: str | None = None,
) -> DeadLetter:
    """A dead letter; its id is stable for the same original at the same place (so retries collapse)."""
    raw = original.encode("utf-8", "surrogateescape") if isinstance(original, str) else bytes(original)
    digest = hashlib.sha256(raw).hexdigest()
    text = raw.decode("utf-8", "backslashreplace")
    truncated = len(text) > MAX_ORIGINAL_CHARS
    if truncated:
        text = text[:MAX_ORIGINAL_CHARS]
    where = (kafka_topic, kafka_partition, kafka_offset) if kafka_topic else None
    info = dict(details or {})
    if truncated:
        info["truncated"] = True
    return DeadLetter(
        # Per tenant: two tenants sending the same bad bytes get a dead letter each.
        id=tenant_id(tenant or LEGACY_TENANT, "dead_letter", stage, origin, reason, digest, where),
        tenant=tenant or "unknown",
        time=utcnow(),
        stage=stage,  # type: ignore[arg-type]
        origin=origin,
        reason=reason,
        error=masker.mask_text(error)[:4000],
        original=masker.mask_text(text),
        original_sha256=digest,
        original_size=len(raw),
        kafka_topic=kafka_topic,
        kafka_partition=kafka_partition,
        kafka_offset=kafka_offset,
        details=masker.mask(info),
        http_status=http_status,
        caller=caller,
    )
