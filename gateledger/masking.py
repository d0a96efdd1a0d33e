"""Secret and PII masking, applied before anything is published to Kafka.

Two kinds of rule:
- by key: values under sensitive keys (``Authorization``, ``client_secret``, ``*token``, cookies...)
  are replaced whole; ``user_token`` becomes a salted hash so it stays joinable; an identifier
  (``id``, ``context_id``, ``audit_id``, ``request_id``...) whose text, decoded, holds a secret or PII
  becomes the salted hash of itself (``mask_identifier``), honest identifiers are kept;
- by value: strings anywhere are scanned for bearer tokens, JWTs, provider API keys, private keys,
  credentials in URLs, ``key=value`` secrets, and PII (emails, phone numbers, Luhn-valid card numbers).

Emails are pseudonymized by default (a salted hash, so one person's activity still joins up) but
never stored in clear.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote

from pydantic import Field, SecretStr
from pydantic_settings import BaseSettings, SettingsConfigDict

from gateledger import jsonutil
from gateledger import masking_rules as rules
from gateledger import truncated_json

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


_PLAIN, _SECRET, _HASHED, _TOKENS, _IDENT = 0, 1, 2, 3, 4
_CACHE_MAX = 65536  # entries per cache; a full text cache is dropped and refilled
_CACHED_TEXT_MAX = 256  # longer strings (bodies, prompts) are rarely repeated
_PAIR_VALUE_FIELDS = frozenset(rules.PAIR_VALUE_FIELDS)
_MAX_DECODE_DEPTH = 6  # encodings peeled off one text (URL inside JSON inside base64...)
# Base64 costs a decode and a scan of the decoded text per layer: runs up to 256 KiB (a credentials
# file, a config), two layers deep; larger runs are attachments and images, not read.
_MAX_BASE64_DEPTH = 2
_MAX_BASE64_RUN = 256 * 1024
_BASE64_CUTS = 3  # separators from the end at which a glued suffix is tried off a base64 run
_MAX_EMBEDDED_JSON = 64  # JSON starts tried per text: bounded work on bracket-heavy text
_JSON = json.JSONDecoder()
_MIN_BASE64_TEXT = 12  # decoded base64 shorter than this cannot hide a credential worth the decode


def _unescape(m: re.Match[str]) -> str:
    """One JSON string escape, decoded (text holding an escaped JSON string, escaped once more)."""
    c = m.group(1)
    if c[0] == "u":
        return chr(int(c[1:], 16))
    return rules.JSON_ESCAPES.get(c, c)


def _value_end(text: str, start: int, token_end: int | None, *, whole_line: bool) -> int:
    """Where the value of ``key: value`` / ``key=value`` ends: a cookie header's at the end of the line
    (``Cookie: a=b; c=d``); after an auth scheme, after its credential (``Authorization=Bearer x``);
    otherwise at ``token_end`` (``key=value``) or after one word (``key: value``)."""
    line_end = min((i for i in (text.find("\n", start), text.find("\r", start)) if i >= 0), default=len(text))
    if whole_line:
        return line_end
    m = rules.VALUE_WORDS.match(text, start, line_end)
    if m is None:
        return start
    return m.end() if token_end is None or m.group("scheme") else token_end


class Masker:
    """Masks secrets and PII in JSON-like values and in free text."""

    def __init__(self, settings: MaskingSettings | None = None, salt: bytes | None = None) -> None:
        self.settings = settings or MaskingSettings()
        if salt is None:
            salt = self.settings.salt.get_secret_value().encode() if self.settings.salt else b""
        if not salt:
            raise ValueError("a masking salt is required (see masking_salt())")
        self._salt = salt
        self._extra_keys = frozenset(rules.norm_key(k) for k in self.settings.extra_secret_keys)
        parts = [f"(?P<{name}>{rx})" for name, rx in rules.SECRET_PATTERNS]
        parts += [f"(?P<extra{i}>{rx})" for i, rx in enumerate(self.settings.extra_patterns)]
        if self.settings.emails != "keep":
            parts.append(f"(?P<email>{rules.EMAIL})")
        if self.settings.cards != "keep":
            parts.append(f"(?P<card>{rules.CARD})")
        if self.settings.phones != "keep":
            parts.append(f"(?P<phone>{rules.PHONE})")
        self._rx = re.compile("|".join(parts))
        self._keys: dict[str, tuple[int, str]] = {}
        self._texts: dict[str, str] = {}
        self._replacers: dict[str, Callable[[re.Match[str]], str]] = {
            "key_value": lambda m: m.group(0)[: m.start("kvval") - m.start()] + REDACTED,
            "url_param": lambda m: m.group(0)[: m.start("upval") - m.start()] + REDACTED,
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

    def mask_identifier(self, value: str) -> str:
        """An identifier as sent, or, when its text (decoded) holds a secret or PII, its salted hash.

        Identifiers are join keys: redacting the secret inside one would make distinct ids equal (and
        keep the rest of an encoded run readable), so the whole id is replaced, by the same hash wherever
        the same id appears (data, envelope fields), and joins still hold.
        """
        if rules.TOKEN_HASH.fullmatch(value) or self.mask_text(value) == value:
            return value
        return self.token_hash(value)

    def is_secret_key(self, key: str) -> bool:
        """True when the value under this key is (or may be) a secret."""
        return self._key_kind(key) not in (_PLAIN, _IDENT)

    def _key_kind(self, key: str) -> int:
        return (self._keys.get(key) or self._key_entry(key))[0]

    def _key_entry(self, key: str) -> tuple[int, str]:
        """How a key's value is masked, and the key itself masked (an email as a key)."""
        # Keys repeat endlessly across records: classify and mask each once.
        entry = self._keys.get(key)
        if entry is None:
            k = rules.norm_key(key)
            if k in rules.NOT_SECRET or k.endswith("count"):
                kind = _PLAIN
            elif k in rules.IDENTIFIER_KEYS:
                kind = _IDENT
            elif k.endswith(rules.PLURAL_TOKENS):
                kind = _TOKENS
            elif k in rules.SECRET_KEYS or k in self._extra_keys or k.endswith(rules.SECRET_SUFFIXES):
                kind = _HASHED if k in rules.HASHED_KEYS else _SECRET
            else:
                kind = _PLAIN
            entry = (kind, self.mask_text(key))
            if len(self._keys) < _CACHE_MAX:
                self._keys[key] = entry
        return entry

    def _masked_value(self, kind: int, v: Any) -> Any:
        """The value under a key of this (non-plain) kind."""
        if kind == _IDENT:
            vt = type(v)
            if vt is str:
                return self.mask_identifier(v)
            return v if vt is int or vt is float else self.mask(v)
        if kind == _HASHED:
            if type(v) is not str:
                return REDACTED
            # Already hashed (text masked twice: a pair inside JSON that was masked as JSON).
            return v if rules.TOKEN_HASH.fullmatch(v) else self.token_hash(v)
        if kind == _TOKENS:
            # Counts stay (``total_tokens``); strings (``refresh_tokens``) are the tokens themselves.
            if type(v) is int or type(v) is float or (type(v) is str and rules.NUMERIC.fullmatch(v)):
                return v
            if type(v) is dict or (type(v) is list and any(type(x) is not str for x in v)):
                return self.mask(v)
        return REDACTED

    def mask(self, value: Any) -> Any:
        """A masked copy of a JSON-like value (dicts, lists, strings, scalars)."""
        t = type(value)
        if t is str:
            return self.mask_text(value)
        if t is dict:
            out: dict[Any, Any] = {}
            keys, key_entry, mask_text, mask = self._keys, self._key_entry, self.mask_text, self.mask
            for k, v in value.items():
                if type(k) is str:
                    kind, k2 = keys.get(k) or key_entry(k)
                else:
                    kind, k2 = _PLAIN, k
                vt = type(v)
                if vt is bool or v is None:
                    out[k2] = v  # nothing to hide in a flag
                    continue
                if kind != _PLAIN and v != "" and v != REDACTED:
                    out[k2] = self._masked_value(kind, v)
                    continue
                out[k2] = mask_text(v) if vt is str else (v if vt is int or vt is float else mask(v))
            # A name/value pair (perhaps with a flag or two).
            if len(value) <= 6 and not _PAIR_VALUE_FIELDS.isdisjoint(value):
                self._mask_named_pair(value, out)
            return out
        if t is list or t is tuple:
            out_list = [self.mask(v) for v in value]
            # A header as a [name, value] pair.
            if len(value) == 2 and type(value[0]) is str and value[1] not in ("", None, REDACTED):
                kind = self._key_kind(value[0])
                if kind != _PLAIN:
                    out_list[1] = self._masked_value(kind, value[1])
            return out_list
        if isinstance(value, str):
            return self.mask_text(value)
        if isinstance(value, dict):
            return self.mask(dict(value))
        if isinstance(value, list | tuple):
            return [self.mask(v) for v in value]
        return value

    def _mask_named_pair(self, value: dict[Any, Any], out: dict[Any, Any]) -> None:
        """``{"name": "Authorization", "value": "..."}``: the value gets the rule of the name it sits beside."""
        for vf in rules.PAIR_VALUE_FIELDS:
            if vf in value:
                break
        else:
            return
        for nf in rules.PAIR_NAME_FIELDS:
            name = value.get(nf)
            if type(name) is str:
                kind = self._key_kind(name)
                if kind != _PLAIN and value[vf] not in ("", None, REDACTED):
                    out[vf] = self._masked_value(kind, value[vf])
                return

    def mask_text(self, text: str) -> str:
        """Free text with every secret and PII match replaced."""
        if len(text) < 6:
            return text
        if len(text) > _CACHED_TEXT_MAX:
            return self._guarded(text)
        # Method names, tool names, header values, model names... repeat across records.
        cached = self._texts.get(text)
        if cached is None:
            cached = self._guarded(text)
            if len(self._texts) >= _CACHE_MAX:
                self._texts.clear()
            self._texts[text] = cached
        return cached

    # -- internals ---------------------------------------------------------------------------

    def _guarded(self, text: str) -> str:
        try:
            return self._mask_text(text)
        except RecursionError:
            # Nesting deeper than Python's stack (crafted input): nothing of it is kept.
            return REDACTED

    def _mask_text(self, text: str, depth: int = 0, b64: int = 0) -> str:
        # Encoded text is masked decoded: what an encoding hides, a reader can still decode. Each
        # decoding makes the text shorter, and the depth bounds layers ("%2525...41" grows slowly).
        decoded = self._decoded(text, depth + 1, b64) if depth < _MAX_DECODE_DEPTH else None
        if decoded is not None:
            return decoded
        out = text
        if "{" in out or "[" in out:
            out = self._embedded_json(out)
        if ":" in out or "=" in out or "[" in out:  # "[": a ``["name", "value"]`` pair needs neither
            out = self._pairs(out)
        out = self._rx.sub(self._replace, out)
        if len(out) >= 16 and b64 < _MAX_BASE64_DEPTH and depth < _MAX_DECODE_DEPTH:
            out = rules.BASE64.sub(lambda m: self._base64(m, depth + 1, b64 + 1), out)
        return out

    def _decoded(self, text: str, depth: int, b64: int) -> str | None:
        """The masked decoded form of JSON-in-a-string, URL-encoded or JSON-escaped text that hid
        something; None when there is nothing to decode or the decoded text is clean."""
        s = text.strip()
        if s[:1] == '"' and s[-1:] == '"' and len(s) > 1:
            # A JSON string literal (a double-encoded value): mask what it holds.
            try:
                inner = jsonutil.loads(s)
            except ValueError:
                inner = None
            if isinstance(inner, str):
                masked_inner = self._mask_text(inner, depth, b64)
                if masked_inner != inner:
                    return jsonutil.dumps_str(masked_inner)
        if s[:1] in ("{", "["):
            value = added = None
            if s[-1:] in ("}", "]"):
                try:
                    value = jsonutil.loads(s)
                except (ValueError, RecursionError):
                    value = None
            if value is None and (closed := truncated_json.close(s)) is not None:
                # JSON cut short: masked as JSON, shown as cut (what closing it added is taken off again).
                try:
                    value, added = jsonutil.loads(closed[0]), closed[1]
                except (ValueError, RecursionError):
                    value = None
            if isinstance(value, dict | list):
                masked = self.mask(value)
                if masked != value:
                    out = jsonutil.dumps_str(masked)
                    return truncated_json.reopen(out, added) if added else out
        candidates = []
        if "%" in text and rules.URL_ESCAPE.search(text):
            candidates.append(unquote(text))
        if "\\" in text and rules.JSON_ESCAPE.search(text):
            candidates.append(rules.JSON_ESCAPE.sub(_unescape, text))
        for plain in candidates:
            if plain != text:
                masked = self._mask_text(plain, depth, b64)
                if masked != plain:
                    return masked
        return None

    def _embedded_json(self, text: str) -> str:
        """Text with each JSON object or array inside it masked with the key rules."""
        out: list[str] = []
        pos = last = 0
        for _ in range(_MAX_EMBEDDED_JSON):
            m = rules.EMBEDDED_JSON.search(text, pos)
            if m is None:
                break
            try:
                value, end = _JSON.raw_decode(text, m.start())
            except (ValueError, RecursionError):
                pos = m.start() + 1
                continue
            pos = end
            masked = self.mask(value)
            if masked != value:
                out += (text[last:m.start()], jsonutil.dumps_str(masked))
                last = end
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    def _pairs(self, text: str) -> str:
        """Key/value pairs written as text: each value gets its key's rule (one pass, linear)."""
        out: list[str] = []
        pos = last = 0
        search = rules.PAIRS.search
        while (m := search(text, pos)) is not None:
            if m.group("nk") is not None:
                key, (start, end) = m.group("nk"), m.span("nv")
            elif m.group("lk") is not None:
                key, (start, end) = m.group("lk"), m.span("lv")
            elif m.group("jk") is not None:
                key, (start, end) = m.group("jk"), m.span("jv")
            else:
                key = m.group("tk")
                start = m.end() if m.group("tc") is not None else m.start("tev")
                end = _value_end(text, start, m.end("tev") if m.group("tev") is not None else None,
                                 whole_line=rules.norm_key(key) in rules.LINE_KEYS)
            kind = self._key_kind(key)
            value = text[start:end]
            # An identifier in running text: its value is one word of that text, masked with the text.
            if kind == _PLAIN or kind == _IDENT or not value.strip() or value == REDACTED:
                # Not a secret itself, but may hold pairs that are ("note: see accessKey=...").
                pos = start if start > m.start() else m.end()
                continue
            masked = self._masked_value(kind, value)
            out += (text[last:start], masked if type(masked) is str else REDACTED)
            last = pos = max(end, start + 1)
        if not out:
            return text
        out.append(text[last:])
        return "".join(out)

    def _base64(self, m: re.Match[str], depth: int, b64: int) -> str:
        """A base64 run whose decoded text holds a secret or PII is redacted whole."""
        run = m.group(0)
        if run.startswith(REDACTED[1:-1]) or len(run) > _MAX_BASE64_RUN:
            return run
        # A suffix glued to the encoding ("<base64>-118", an id made of a token and a counter) decodes
        # into junk bytes that hide the text: the run up to its last few URL-safe separators is tried too.
        cuts = [i for i in range(len(run) - 1, 15, -1) if run[i] in "-_"][:_BASE64_CUTS]
        for candidate in (run, *(run[:i] for i in cuts)):
            plain = self._base64_text(candidate)
            if plain is not None:
                return REDACTED if self._mask_text(plain, depth, b64) != plain else run
        return run

    @staticmethod
    def _base64_text(run: str) -> str | None:
        """The text a base64 run decodes to, or None when it decodes to something other than text."""
        # Whole quanta only: a run may end in characters that are not part of the encoding ("...-9").
        raw = run.rstrip("=")
        raw = raw[: len(raw) - len(raw) % 4] if len(raw) % 4 == 1 else raw
        try:
            data = base64.b64decode(raw.replace("-", "+").replace("_", "/") + "=" * (-len(raw) % 4))
        except ValueError:
            return None
        plain = data.decode("utf-8", "replace")
        # Text, allowing for a few undecodable characters at the edges (a suffix glued to the run).
        bad = len(rules.NOT_TEXT.findall(plain))
        if len(plain) < _MIN_BASE64_TEXT or bad > 2 + len(plain) // 50:
            return None
        return rules.NOT_TEXT.sub(" ", plain) if bad else plain

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
        if 13 <= len(digits) <= 19 and rules.card_ok(digits):
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
