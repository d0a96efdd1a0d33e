"""A simulation as the envelopes ingest would publish: each delivered record through its real format.

For the processors' tests and benchmarks, which feed raw topics without an ingest service: the same
format code (``producers/accept.py``) maps the records, so ids, keys, masking and topics are what
a real delivery gives. Malformed records are left out (ingest dead-letters them; no raw topic sees
them). Receipt time is the delivery time, so late and reordered deliveries arrive as they would.
"""

from __future__ import annotations

from collections.abc import Iterator

from gateledger.masking import Masker
from producers.accept import get_format
from producers.accept import IngestContext, Published
from producers.obot.webhook import DELIVERY_HEADER
from producers.simulator.traffic import Delivery


def published(deliveries: list[Delivery], masker: Masker, *, install: str = "default") -> Iterator[Published]:
    """The envelope of every well-formed delivery, in delivery order (duplicates included, as delivered)."""
    for d in deliveries:
        if d.kind == "malformed":
            continue
        ctx = IngestContext(masker=masker, tenant=d.tenant, install=install, received_at=d.at,
                            delivery_id=d.headers.get(DELIVERY_HEADER), subject=d.headers.get("X-Obot-User-Id"))
        yield get_format(d.fmt)(d.value, ctx)
