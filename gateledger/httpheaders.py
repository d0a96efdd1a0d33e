"""Header values from hostile callers, handled without exceptions: checked, turned into bytes, compared.

aiohttp hands header values over as ``str`` decoded with ``surrogateescape``: ``str.encode()`` on
one that was not UTF-8 raises, and ``hmac.compare_digest`` on non-ASCII ``str`` raises TypeError,
so a stray byte in ``Authorization`` became a 500. Everything here is total.
"""

from __future__ import annotations

import hashlib
import hmac

# RFC 9110 field values are visible ASCII plus space and tab; credentials (RFC 6750 token68) are a
# subset, so anything else in an authentication header is refused rather than interpreted.
_VISIBLE = frozenset(range(0x20, 0x7F)) | {0x09}


def as_bytes(value: str) -> bytes:
    """The header's bytes as received (never raises)."""
    return value.encode("utf-8", "surrogateescape")


def is_visible_ascii(value: str) -> bool:
    """True when every character is visible ASCII, space or tab."""
    return all(ord(c) in _VISIBLE for c in value)


def same_secret(given: str | bytes, expected: str | bytes) -> bool:
    """Constant-time equality of two secrets of any length and content (digests are compared)."""
    g = as_bytes(given) if isinstance(given, str) else given
    e = as_bytes(expected) if isinstance(expected, str) else expected
    return hmac.compare_digest(hashlib.sha256(g).digest(), hashlib.sha256(e).digest())
