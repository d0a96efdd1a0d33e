"""Deterministic ids: the same upstream record always gets the same id, so retries and replays are idempotent."""

from __future__ import annotations

import hashlib
from typing import Any

from gateledger.jsonutil import canonical_bytes

_ID_BYTES = 16  # 128 bits: collision-free for any realistic event volume


def stable_id(*parts: Any) -> str:
    """A 32-hex-digit id from the given parts (strings, numbers, None, or JSON-able values)."""
    h = hashlib.blake2b(digest_size=_ID_BYTES)
    for part in parts:
        if isinstance(part, bytes):
            chunk = part
        elif isinstance(part, str):
            chunk = part.encode()
        elif part is None:
            chunk = b"\x00null"
        elif isinstance(part, bool | int | float):
            chunk = repr(part).encode()
        else:
            chunk = canonical_bytes(part)
        # Length-prefix each part so ("ab", "c") and ("a", "bc") differ.
        h.update(len(chunk).to_bytes(8, "big"))
        h.update(chunk)
    return h.hexdigest()


# Ids minted before the tenant was part of every id (up to 6a10a2c) had no tenant in them. This
# tenant keeps exactly those ids, so a single-tenant install upgrades without one record changing
# its id; every other tenant gets ids scoped by its name (docs/operations.md, "Upgrades").
LEGACY_TENANT = "default"


def tenant_id(tenant: str, *parts: Any) -> str:
    """``stable_id(*parts)`` within one tenant: two tenants with the same parts get different ids."""
    if tenant == LEGACY_TENANT:
        return stable_id(*parts)
    # The leading "tenant" part cannot start an unscoped id (those start with a kind name), and
    # length prefixes keep ("tenant", "a|b", ...) apart from ("tenant", "a", "b", ...).
    return stable_id("tenant", tenant, *parts)


def event_id(source: str, event_type: str, upstream_id: Any = None, record: Any = None, *,
             tenant: str) -> str:
    """Id of an envelope: from the upstream id when it has one, else from the canonical record.

    Scoped by tenant: two tenants' Obot installs both numbering rows 1, 2, 3... do not collide.
    """
    if upstream_id not in (None, "", 0):
        return tenant_id(tenant, "upstream", source, event_type, str(upstream_id))
    return tenant_id(tenant, "record", source, event_type, record)


def finding_id(kind: str, *facts: str) -> str:
    """The id of the finding of ``kind`` that ``facts`` (stable identifiers) establish, whoever detects it."""
    return stable_id("finding", str(kind), *facts)
