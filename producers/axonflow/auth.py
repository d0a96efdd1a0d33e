"""Who may use the AxonFlow tap, and for which tenant.

The tap forwards ``Authorization`` to AxonFlow untouched (it is AxonFlow's credential), so a
caller proves itself to gateledger separately: ``X-Gateledger-Token: <token>`` or
``Proxy-Authorization: Bearer <token>`` (RFC 9110 11.7.1: credentials for the proxy, never
forwarded). A token names the tenants it may speak for (``GATELEDGER_INGEST_AXONFLOW_TOKENS``;
the ingest's own ``GATELEDGER_INGEST_TOKENS`` count too, ``*`` meaning any tenant).

Default-deny: with any token configured, a request without a known token is refused (401) and
the tenant it names must be one its token allows (403). The tenant a request names: its
``X-Tenant-ID`` header, else the client id of its Basic credentials (AxonFlow derives the tenant
from it: getaxonflow/axonflow platform/agent/auth.go), else ``context.tenant_id`` of the body.
With no token configured at all (the embedded loopback default, as for every ingest route) the
named tenant is taken as is. Whatever is decided here is the one tenant of the exchange: it is
recorded and it is the only tenant the budget check ever sees.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass
from typing import Any

from multidict import CIMultiDictProxy

TOKEN_HEADER = "X-Gateledger-Token"
ANY_TENANT = "*"
_MAX_HEADER = 4096


class TapRefusal(Exception):
    """A request the tap answers itself, without forwarding (status, reason, message)."""

    def __init__(self, status: int, reason: str, message: str) -> None:
        super().__init__(message)
        self.status, self.reason, self.message = status, reason, message

    def body(self) -> dict[str, str]:
        """The JSON answer."""
        return {"error": self.message, "reason": self.reason}


def _digest(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _printable_ascii(value: str) -> bool:
    return value.isascii() and value.isprintable()


def header_value(headers: CIMultiDictProxy[str], name: str, *, status: int = 400) -> str | None:
    """A header's value when it is plain printable ASCII (refused with ``status`` otherwise)."""
    value = headers.get(name)
    if value is None:
        return None
    value = value.strip()
    if not value:
        return None
    if len(value) > _MAX_HEADER or not _printable_ascii(value):
        raise TapRefusal(status, "bad_header", f"{name} must be printable ASCII")
    return value


def basic_client_id(authorization: str | None) -> str | None:
    """The user part of ``Authorization: Basic`` credentials (AxonFlow's client id), never the secret."""
    if not authorization or not _printable_ascii(authorization):
        return None
    scheme, _, value = authorization.partition(" ")
    if scheme.lower() != "basic":
        return None
    try:
        decoded = base64.b64decode(value.strip(), validate=True).decode("utf-8")
    except (binascii.Error, ValueError):
        return None
    user = decoded.partition(":")[0]
    return user if user and user.isprintable() else None


def presented_token(headers: CIMultiDictProxy[str]) -> str | None:
    """The gateledger token a request presents (401 for one that is not printable ASCII)."""
    token = header_value(headers, TOKEN_HEADER, status=401)
    if token:
        return token
    proxy = header_value(headers, "Proxy-Authorization", status=401)
    if proxy:
        scheme, _, value = proxy.partition(" ")
        if scheme.lower() == "bearer" and value.strip():
            return value.strip()
    return None


def named_tenant(headers: CIMultiDictProxy[str], body: dict[str, Any] | None) -> str | None:
    """The tenant a request names for itself (see the module docstring for the order)."""
    tenant = header_value(headers, "X-Tenant-ID") or basic_client_id(headers.get("Authorization"))
    if tenant:
        return tenant
    ctx = body.get("context") if isinstance(body, dict) else None
    if isinstance(ctx, dict) and isinstance(ctx.get("tenant_id"), str) and ctx["tenant_id"].strip():
        return ctx["tenant_id"].strip()
    return None


@dataclass(frozen=True)
class TapAuth:
    """Token digests and the tenants each may speak for."""

    grants: dict[bytes, frozenset[str]]
    default_tenant: str

    @classmethod
    def build(cls, tap_tokens: dict[str, list[str]], ingest_tokens: dict[str, str], default_tenant: str) -> TapAuth:
        """From the tap's own tokens and the ingest's (token -> tenant, ``*`` for any)."""
        grants: dict[bytes, set[str]] = {}
        for token, tenant in ingest_tokens.items():
            grants.setdefault(_digest(token), set()).add(tenant)
        for token, tenants in tap_tokens.items():
            grants.setdefault(_digest(token), set()).update(tenants)
        return cls({k: frozenset(v) for k, v in grants.items()}, default_tenant)

    @property
    def open(self) -> bool:
        """No token configured: the loopback default, every request accepted."""
        return not self.grants

    def knows(self, headers: CIMultiDictProxy[str]) -> bool:
        """True when the request presents a known token, or none is configured (open mode)."""
        if self.open:
            return True
        try:
            token = presented_token(headers)
        except TapRefusal:
            return False
        return token is not None and _digest(token) in self.grants

    def tenant_for(self, headers: CIMultiDictProxy[str], body: dict[str, Any] | None) -> str:
        """The one tenant of this request; TapRefusal (401/403/400) when it may not be used."""
        token = presented_token(headers)
        named = named_tenant(headers, body)
        if self.open:
            return named or self.default_tenant
        allowed = self.grants.get(_digest(token)) if token else None
        if allowed is None:
            raise TapRefusal(401, "unauthenticated", f"missing or unknown gateledger token ({TOKEN_HEADER})")
        if named is None:
            if ANY_TENANT in allowed:
                return self.default_tenant
            if len(allowed) == 1:
                return next(iter(allowed))
            raise TapRefusal(400, "tenant_required", "this token speaks for several tenants: name one (X-Tenant-ID)")
        if ANY_TENANT in allowed or named in allowed:
            return named
        raise TapRefusal(403, "tenant_not_allowed", f"this token may not speak for tenant {named!r}")
