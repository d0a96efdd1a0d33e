"""Secret and PII masking, applied before anything is published to Kafka.

Two kinds of rule:
- by key: values under sensitive keys (``Authorization``, ``client_secret``, ``*token``, cookies...)
  are replaced whole; ``user_token`` becomes a salted hash so it stays joinable;
- by value: strings anywhere are scanned for bearer tokens, JWTs, provider API keys, private keys,
  credentials in URLs, ``key=value`` secrets, and PII (emails, phone numbers, Luhn-valid card numbers).

Emails are pseudonymized by default (a salted hash, so one person's activity still joins up) but
never stored in clear.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

REDACTED = "[REDACTED]"

PiiAction = Literal["pseudonymize", "redact", "keep"]


class MaskingSettings(BaseSettings):
    """Masking rules (``GATELEDGER_MASKING_*``)."""

    model_config = SettingsConfigDict(env_prefix="GATELEDGER_MASKING_", extra="ignore")

    # Salt for token hashes and pseudonyms. Unset: a random salt kept in <data_dir>/masking.salt.
    salt: SecretStr | None = None
    emails: PiiAction = "pseudonymize"
    phones: PiiAction = "redact"
    cards: PiiAction = "redact"
    # Extra key names (matched case- and separator-insensitively) whose values are redacted.
    extra_secret_keys: list[str] = Field(default_factory=list)
    # Extra regular expressions whose matches are redacted wherever they appear.
    extra_patterns: list[str] = Field(default_factory=list)


def _norm_key(key: str) -> str:
    return key.lower().replace("-", "").replace("_", "").replace(".", "").replace(" ", "")


# Exact key names (normalized) whose values are secrets.
_SECRET_KEYS = frozenset(
    _norm_key(k)
    for k in (
        "authorization",
        "proxy-authorization",
        "cookie",
        "set-cookie",
        "x-api-key",
        "api-key",
        "apikey",
        "api_secret",
        "x-client-secret",
        "x-license-key",
        "license_key",
        "client_secret",
        "password",
        "passwd",
        "private_key",
        "credentials",
        "credential",
        "x-amz-security-token",
        "aws_secret_access_key",
        "code_verifier",
        "assertion",
        "client_assertion",
        "signature",
        "x-obot-signature-256",
    )
)
# Normalized suffixes that mark a secret (``refresh_token``, ``githubToken``, ``dbPassword``...).
_SECRET_SUFFIXES = ("token", "secret", "password", "apikey", "privatekey", "sessionkey")
# Keys that end like a secret but are not (token counts, token types, usage objects).
_NOT_SECRET = frozenset(_norm_key(k) for k in ("max_token", "token_type", "tokentype", "next_token"))
_HASHED_KEYS = frozenset({_norm_key("user_token")})
_PLAIN, _SECRET, _HASHED = 0, 1, 2
_CACHE_MAX = 65536  # entries per cache; a full text cache is dropped and refilled
_CACHED_TEXT_MAX = 256  # longer strings (bodies, prompts) are rarely repeated


def _card_ok(digits: str) -> bool:
    """Luhn check: only real-looking card numbers are masked, not every long number."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


_SECRET_PATTERNS: list[tuple[str, str]] = [
    ("private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    ("auth_scheme", r"\b(?i:bearer|basic|token)\s+[A-Za-z0-9\-._~+/]{8,}=*"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    ("provider_key", r"\b(?:sk|pk|rk)-(?:proj-|ant-(?:api\d+-)?|live-|test-)?[A-Za-z0-9_-]{16,}"),
    ("stripe_key", r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("aws_key_id", r"\b(?:AKIA|ASIA|AIDA|AROA)[0-9A-Z]{16}\b"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    ("google_key", r"\bAIza[0-9A-Za-z_-]{30,}"),
    ("slack_token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    ("url_credentials", r"(?<=://)[^/\s:@]{1,256}:[^/\s@]{1,256}(?=@)"),
    (
        "key_value",
        r"(?<![A-Za-z0-9])(?i:api[_-]?key|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token"
        r"|client[_-]?secret|secret|password|passwd|pwd|token)"
        r"(?P<kvsep>[\"']?\s*[:=]\s*[\"']?)(?P<kvval>[^\s\"'&,;}{]{4,})",
    ),
]
_EMAIL = r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}"
_PHONE = (
    r"(?<![\w+])(?:\+\d{1,3}[ -]?)?(?:\(\d{2,4}\)[ -]?|\d{2,4}[ -])\d{3,4}[ -]\d{3,4}(?![\w-])"
    r"|(?<![\w+])\+\d{10,15}(?!\w)"
)
_CARD = r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"


class Masker:
    """Masks secrets and PII in JSON-like values and in free text."""

    def __init__(self, settings: MaskingSettings | None = None, salt: bytes | None = None) -> None:
        self.settings = settings or MaskingSettings()
        if salt is None:
            salt = self.settings.salt.get_secret_value().encode() if self.settings.salt else b""
        if not salt:
            raise ValueError("a masking salt is required (see masking_salt())")
        self._salt = salt
        self._extra_keys = frozenset(_norm_key(k) for k in self.settings.extra_secret_keys)
        parts = [f"(?P<{name}>{rx})" for name, rx in _SECRET_PATTERNS]
        parts += [f"(?P<extra{i}>{rx})" for i, rx in enumerate(self.settings.extra_patterns)]
        if self.settings.emails != "keep":
            parts.append(f"(?P<email>{_EMAIL})")
        if self.settings.cards != "keep":
            parts.append(f"(?P<card>{_CARD})")
        if self.settings.phones != "keep":
            parts.append(f"(?P<phone>{_PHONE})")
        self._rx = re.compile("|".join(parts))
        self._keys: dict[str, int] = {}
        self._texts: dict[str, str] = {}
        self._replacers: dict[str, Callable[[re.Match[str]], str]] = {
            "key_value": lambda m: m.group(0)[: m.start("kvval") - m.start()] + REDACTED,
            "auth_scheme": lambda m: m.group(0).split(None, 1)[0] + " " + REDACTED,
            "email": lambda m: self._pii(m.group(0), self.settings.emails, "email"),
            "phone": lambda m: self._pii(m.group(0), self.settings.phones, "phone"),
            "card": self._card,
        }

    # -- public API --------------------------------------------------------------------------

    def token_hash(self, token: str) -> str:
        """Salted hash of a credential: stable for joining, useless to an attacker."""
        digest = hmac.new(self._salt, token.encode(), hashlib.sha256).hexdigest()[:32]
        return f"hmac:{digest}"

    def is_secret_key(self, key: str) -> bool:
        """True when the value under this key is a secret."""
        return self._key_kind(key) != _PLAIN

    def _key_kind(self, key: str) -> int:
        # Keys repeat endlessly across records: classify each once.
        kind = self._keys.get(key)
        if kind is None:
            k = _norm_key(key)
            if k in _NOT_SECRET or k.endswith("tokens") or k.endswith("count"):
                kind = _PLAIN
            elif k in _SECRET_KEYS or k in self._extra_keys or k.endswith(_SECRET_SUFFIXES):
                kind = _HASHED if k in _HASHED_KEYS else _SECRET
            else:
                kind = _PLAIN
            if len(self._keys) < _CACHE_MAX:
                self._keys[key] = kind
        return kind

    def mask(self, value: Any) -> Any:
        """A masked copy of a JSON-like value (dicts, lists, strings, scalars)."""
        t = type(value)
        if t is str:
            return self.mask_text(value)
        if t is dict:
            out: dict[Any, Any] = {}
            key_kind, mask_text, mask = self._key_kind, self.mask_text, self.mask
            for k, v in value.items():
                vt = type(v)
                if vt is bool or v is None:
                    out[k] = v  # nothing to hide in a flag
                    continue
                if type(k) is str and v != "" and v != REDACTED:
                    kind = key_kind(k)
                    if kind == _SECRET:
                        out[k] = REDACTED
                        continue
                    if kind == _HASHED:
                        out[k] = self.token_hash(v) if vt is str else REDACTED
                        continue
                out[k] = mask_text(v) if vt is str else (v if vt is int or vt is float else mask(v))
            return out
        if t is list or t is tuple:
            return [self.mask(v) for v in value]
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, dict):
            return self.mask(dict(value))
        if isinstance(value, list | tuple):
            return [self.mask(v) for v in value]
        return value

    def mask_text(self, text: str) -> str:
        """Free text with every secret and PII match replaced."""
        if len(text) < 6:
            return text
        if len(text) > _CACHED_TEXT_MAX:
            return self._rx.sub(self._replace, text)
        # Method names, tool names, header values, model names... repeat across records.
        cached = self._texts.get(text)
        if cached is None:
            cached = self._rx.sub(self._replace, text)
            if len(self._texts) >= _CACHE_MAX:
                self._texts.clear()
            self._texts[text] = cached
        return cached

    # -- internals ---------------------------------------------------------------------------

    def _replace(self, m: re.Match[str]) -> str:
        name = m.lastgroup or ""
        replacer = self._replacers.get(name)
        return replacer(m) if replacer else REDACTED

    def _pii(self, text: str, action: PiiAction, kind: str) -> str:
        if action == "keep":
            return text
        if action == "redact":
            return f"[{kind.upper()}]"
        digest = hmac.new(self._salt, text.lower().encode(), hashlib.sha256).hexdigest()[:12]
        return f"{kind}:{digest}"

    def _card(self, m: re.Match[str]) -> str:
        digits = re.sub(r"\D", "", m.group(0))
        if 13 <= len(digits) <= 19 and _card_ok(digits):
            return self._pii(m.group(0), self.settings.cards, "card")
        return m.group(0)


def masking_salt(data_dir: Path, settings: MaskingSettings | None = None) -> bytes:
    """The salt from settings, or a random one persisted under the data directory."""
    settings = settings or MaskingSettings()
    if settings.salt is not None:
        return settings.salt.get_secret_value().encode()
    path = data_dir / "masking.salt"
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(secrets.token_hex(32))
        tmp.chmod(0o600)
        try:
            tmp.rename(path) if not path.exists() else tmp.unlink()
        except FileExistsError:
            tmp.unlink(missing_ok=True)
    return path.read_text().strip().encode()
