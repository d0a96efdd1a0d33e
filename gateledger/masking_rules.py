"""What the masker looks for: secret key names and the text patterns of secrets and PII.

Kept apart from the masking algorithm (gateledger/masking.py) so the rules can be read, reviewed
and extended in one place.
"""

from __future__ import annotations

import re


def norm_key(key: str) -> str:
    """A key name compared case- and separator-insensitively (``X-Api-Key`` == ``x_api_key``)."""
    return key.lower().replace("-", "").replace("_", "").replace(".", "").replace(" ", "")


# Exact key names (normalized) whose values are secrets.
SECRET_KEYS = frozenset(
    norm_key(k)
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
        "pwd",
        "passphrase",
        "private_key",
        "credentials",
        "credential",
        "x-amz-security-token",
        "x-amz-signature",
        "x-amz-credential",
        "aws_secret_access_key",
        "code_verifier",
        "assertion",
        "client_assertion",
        "signature",
        "sig",
        "x-obot-signature-256",
        # A session cookie or session credential (not ``sessionID``: that is a correlation key).
        "session",
        "ocp-apim-subscription-key",
        "x-functions-key",
        "connection_string",
        "connectionstring",
    )
)
# Normalized suffixes that mark a secret (``refresh_token``, ``githubToken``, ``dbPassword``,
# ``secret_key``, ``accessKey``, ``AccountKey``...).
SECRET_SUFFIXES = (
    "token", "secret", "password", "passphrase", "apikey", "privatekey", "sessionkey", "secretkey",
    "accesskey", "accountkey", "subscriptionkey", "masterkey", "signingkey", "encryptionkey", "signature",
    "credential", "credentials", "cookie",
)
# Keys that end like a secret but are not (token types, pagination cursors).
NOT_SECRET = frozenset(norm_key(k) for k in ("max_token", "token_type", "tokentype", "next_token"))
# Plural ``*tokens``: token counts (``total_tokens: 5``) stay, token strings (``refresh_tokens``) go.
PLURAL_TOKENS = "tokens"
HASHED_KEYS = frozenset({norm_key("user_token")})
# Identifiers are join keys: one whose text holds a secret or PII is replaced whole by its salted hash
# (the same everywhere it appears, so joins hold); an honest one is kept as sent.
IDENTIFIER_KEYS = frozenset(norm_key(k) for k in ("id", "context_id", "audit_id", "request_id", "decision_id"))
TOKEN_HASH = re.compile(r"hmac:[0-9a-f]{32}")
# Object fields naming the header (or parameter) whose value sits beside them:
# ``{"name": "Authorization", "value": "Bearer ..."}`` (HAR, Envoy, Kong, Azure APIM...).
PAIR_NAME_FIELDS = ("name", "key", "header", "Name", "Key", "Header")
PAIR_VALUE_FIELDS = ("value", "values", "Value", "Values")

# Query parameters that carry credentials in URLs (Google ``key``, Azure SAS ``sig``, S3 presigned).
_URL_PARAMS = (
    r"key|sig|signature|x-amz-signature|x-amz-credential|x-amz-security-token|x-goog-signature"
    r"|x-goog-credential|code|token|access_token|id_token|refresh_token|auth|apikey|api_key|api-key"
    r"|client_secret|password|secret|session|subscription-key|subscription_key"
)
SECRET_PATTERNS: list[tuple[str, str]] = [
    ("private_key", r"-----BEGIN [A-Z ]*PRIVATE KEY-----[\s\S]*?(?:-----END [A-Z ]*PRIVATE KEY-----|$)"),
    ("auth_scheme", r"\b(?i:bearer|basic|token)\s+[A-Za-z0-9\-._~+/]{8,}=*"),
    ("jwt", r"\beyJ[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]{4,}\.[A-Za-z0-9_-]*"),
    ("provider_key", r"\b(?:sk|pk|rk)-(?:proj-|ant-(?:api\d+-)?|live-|test-)?[A-Za-z0-9_-]{16,}"),
    ("stripe_key", r"\b[sr]k_(?:live|test)_[A-Za-z0-9]{16,}"),
    ("aws_key_id", r"\b(?:AKIA|ASIA|AIDA|AROA)[0-9A-Z]{16}\b"),
    ("github_token", r"\b(?:gh[pousr]_[A-Za-z0-9]{20,}|github_pat_[A-Za-z0-9_]{20,})"),
    ("hf_token", r"\bhf_[A-Za-z0-9]{30,}"),
    ("gitlab_token", r"\bglpat-[A-Za-z0-9_-]{20,}"),
    ("npm_token", r"\bnpm_[A-Za-z0-9]{36,}"),
    ("google_key", r"\bAIza[0-9A-Za-z_-]{30,}"),
    ("slack_token", r"\bxox[abprs]-[A-Za-z0-9-]{10,}"),
    # At the very end of a text cut short (a truncated body, a dead letter's original) the ``@host``
    # may be gone: what follows ``user:`` there is still the password, unless it is a port.
    ("url_credentials", r"(?<=://)[^/\s:@]{1,256}:(?:[^/\s@]{1,256}(?=@)|(?!\d{1,5}\Z)[^/\s@]{1,256}\Z)"),
    ("url_param", rf"(?<=[?&;])(?i:{_URL_PARAMS})=(?P<upval>[^&#\s\"'<>]+)"),
    (
        "key_value",
        r"(?<![A-Za-z0-9])(?i:api[_-]?key|access[_-]?token|refresh[_-]?token|id[_-]?token|auth[_-]?token"
        r"|client[_-]?secret|secret[_-]?key|access[_-]?key|account[_-]?key|shared[_-]?access[_-]?key"
        r"|shared[_-]?access[_-]?signature|passphrase|secret|password|passwd|pwd|token)"
        r"(?P<kvsep>[\"']?\s*[:=]\s*[\"']?)(?P<kvval>[^\s\"'&,;}{]{4,})",
    ),
]
EMAIL = r"(?<![A-Za-z0-9._%+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}"
PHONE = (
    r"(?<![\w+])(?:\+\d{1,3}[ -]?)?(?:\(\d{2,4}\)[ -]?|\d{2,4}[ -])\d{3,4}[ -]\d{3,4}(?![\w-])"
    r"|(?<![\w+])\+\d{10,15}(?!\w)"
)
CARD = r"(?<![\d-])(?:\d[ -]?){12,18}\d(?![\d-])"

# Key/value pairs written as text (a JSON fragment that does not parse, a header dump, ``k=v``
# settings): the key rules apply to them too. A ``{"name": k, "value": v}`` pair, a ``[k, v]`` pair,
# a JSON member; ``key: value``; ``key=value``.
PAIRS = re.compile(
    r"\"(?:name|key|header|Name|Key|Header)\"\s*:\s*\"(?P<nk>[^\"\\\n]{1,100})\"\s*,\s*"
    r"\"(?:value|values|Value|Values)\"\s*:\s*\"(?P<nv>(?:[^\"\\]|\\.)*)(?:\"|\\?\Z)"
    r"|\[\s*\"(?P<lk>[^\"\\\n]{1,100})\"\s*,\s*\"(?P<lv>(?:[^\"\\]|\\.)*)(?:\"|\\?\Z)"
    r"|\"(?P<jk>[^\"\\\n]{1,100})\"\s*:\s*\"(?P<jv>(?:[^\"\\]|\\.)*)(?:\"|\\?\Z)"
    r"|(?<![\w.$%-])(?P<tk>[A-Za-z_][\w.-]{0,63})"
    r"(?:(?P<tc>[\"']?[ \t]*:[ \t]*)(?=\S)|(?P<te>[\"']?[ \t]*=[ \t]*[\"']?)(?P<tev>[^\s\"'&;,]+))"
)
# Header lines whose value is a list of pairs: redacted to the end of the line.
LINE_KEYS = frozenset({"cookie", "setcookie"})
# The value of ``key: value`` in running text: one word, or an auth scheme and its credential.
VALUE_WORDS = re.compile(r"(?P<scheme>(?i:bearer|basic|token|digest|negotiate|apikey|hmac|sharedkey)[ \t]+)?\S+")
# Control characters other than line breaks and tabs, and undecodable bytes: decoded bytes that are not text.
NOT_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\ufffd]")
# Runs of base64 (standard or URL-safe) long enough to hide a credential.
BASE64 = re.compile(r"(?<![A-Za-z0-9+/=_-])[A-Za-z0-9+/_-]{16,}={0,2}")
# Where JSON may start inside running text (``payload: {"a": ...}``, ``headers [["k", "v"]]``).
EMBEDDED_JSON = re.compile(r"[\[{](?=\s*[\"\[{])")
JSON_ESCAPE = re.compile(r"\\([\"\\/bfnrt]|u[0-9a-fA-F]{4})")
JSON_ESCAPES = {"b": "\b", "f": "\f", "n": "\n", "r": "\r", "t": "\t"}
URL_ESCAPE = re.compile(r"%[0-9A-Fa-f]{2}")
NUMERIC = re.compile(r"\s*\d+(?:\.\d+)?\s*")


def card_ok(digits: str) -> bool:
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
