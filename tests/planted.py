"""Hypothesis strategies that plant secrets and PII in random places of random upstream records, and an
oracle that finds them again however they were encoded (shared by the masking property tests).

Secrets are drawn from a ``random.Random`` seeded by Hypothesis (high entropy even when it shrinks) and
always hold an upper-case letter and a digit; filler text is lower-case letters and punctuation only,
so a needle found in the output can only come from a planted secret.
"""

from __future__ import annotations

import base64
import json
import random
import re
import string
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote, unquote

from hypothesis import strategies as st

from tests import samples

_ALNUM = string.ascii_letters + string.digits
FILLER_ALPHABET = string.ascii_lowercase + " .,:-_/"


def _opaque(rnd: random.Random, n: int = 24) -> str:
    return rnd.choice(string.ascii_uppercase) + rnd.choice(string.digits) + "".join(rnd.choices(_ALNUM, k=n - 2))


# Secrets recognisable by their shape alone: planted anywhere, even in free text under any key.
SHAPED: dict[str, Callable[[random.Random], str]] = {
    "openai": lambda r: "sk-proj-" + _opaque(r, 40),
    "anthropic": lambda r: "sk-ant-api03-" + _opaque(r, 40),
    "github": lambda r: "ghp_" + _opaque(r, 36),
    "huggingface": lambda r: "hf_" + _opaque(r, 34),
    "aws_key_id": lambda r: "AKIA" + "".join(r.choices(string.ascii_uppercase + string.digits, k=15)) + "7",
    "google": lambda r: "AIza" + _opaque(r, 35),
    "slack": lambda r: "xoxb-" + _opaque(r, 30),
    "jwt": lambda r: "eyJhbGciOiJIUzI1NiJ9." + _opaque(r, 30) + "." + _opaque(r, 20),
    "email": lambda r: f"{''.join(r.choices(string.ascii_lowercase, k=6))}.Q{r.randrange(10**6)}@corp.example.com",
}
# Key names whose values are secrets, spelled as upstreams spell them.
SECRET_KEYS = ("Authorization", "authorization", "Cookie", "X-Api-Key", "x-api-key", "client_secret", "password",
               "secret_key", "accessKey", "passphrase", "session", "refresh_tokens", "api_tokens", "githubToken",
               "Ocp-Apim-Subscription-Key", "AccountKey", "dbPassword", "X-Amz-Security-Token", "user_token",
               "privateKey", "X-Client-Secret", "set-cookie", "apiKey")
URL_PARAMS = ("key", "sig", "X-Amz-Signature", "token", "access_token", "api_key", "code", "client_secret",
              "password", "X-Goog-Signature", "signature")


@dataclass
class Plant:
    """A JSON fragment hiding ``secret``; ``text`` when the fragment is a string (can be embedded in text)."""

    secret: str
    fragment: Any
    how: str


def _header_value(key: str, secret: str) -> str:
    k = key.lower()
    if k == "authorization":
        return f"Bearer {secret}"
    if "cookie" in k:
        return f"theme=dark; sid={secret}"
    return secret


HOWS = ("shaped_text", "secret_key", "header_pairs", "header_lists", "url_query", "url_userinfo",
        "connection_string", "text_pair", "header_dump", "email_key")
ENCODINGS = ("plain", "plain", "plain", "url", "url2", "json", "json2", "base64", "base64url")


def _filler(rnd: random.Random, n: int = 12) -> str:
    return "".join(rnd.choices(FILLER_ALPHABET, k=rnd.randint(0, n)))


Choose = Callable[[Sequence[Any]], Any]


@st.composite
def plants(draw: st.DrawFn) -> Plant:
    """One secret or PII value in one of the places issue 15 lists, possibly encoded."""
    # Few Hypothesis draws (they cost): the place and the encoding; the rest from a seeded Random.
    return make_plant(lambda seq: draw(st.sampled_from(seq)), random.Random(draw(st.integers(0, 2**64))))


def make_plant(choose: Choose, rnd: random.Random) -> Plant:
    """A plant whose place and encoding ``choose`` picks (Hypothesis, or a Random), details from ``rnd``."""
    how, encoding = choose(HOWS), choose(ENCODINGS)
    secret = SHAPED[rnd.choice(sorted(SHAPED))](rnd) if how in ("shaped_text", "email_key") \
        else _opaque(rnd, rnd.randint(16, 40))
    key = rnd.choice(SECRET_KEYS)
    a, b = _filler(rnd), _filler(rnd)
    fragment: Any
    if how == "shaped_text":
        fragment = f"{a} {secret} {b}"
    elif how == "secret_key":
        value: Any = [secret] if key.endswith("tokens") and rnd.random() < 0.5 else _header_value(key, secret)
        fragment = {key: value}
    elif how == "header_pairs":
        fragment = [{"name": "accept", "value": "application/json"},
                    {rnd.choice(("name", "key", "Name")): key, "value": _header_value(key, secret)}]
    elif how == "header_lists":
        fragment = [["accept", "*/*"], [key, _header_value(key, secret)]]
    elif how == "url_query":
        fragment = f"https://svc.example.com/{a.replace(' ', '')}?a=1&{rnd.choice(URL_PARAMS)}={secret}&b=2"
    elif how == "url_userinfo":
        fragment = f"{a} postgres://svc:{secret}@db.internal:5432/x {b}"
    elif how == "connection_string":
        fragment = rnd.choice((
            f"DefaultEndpointsProtocol=https;AccountName=acct;AccountKey={secret}==;EndpointSuffix=core.windows.net",
            f"Server=db;User Id=svc;Password={secret};Encrypt=true",
            f"Endpoint=sb://ns.servicebus.windows.net/;SharedAccessKeyName=root;SharedAccessKey={secret}="))
    elif how == "text_pair":
        sep = rnd.choice(("=", ": ", '": "'))
        fragment = f'{a} "{key}{sep}{_header_value(key, secret)}" {b}' if sep == '": "' else \
            f"{a} {key}{sep}{_header_value(key, secret)} {b}"
    elif how == "header_dump":
        fragment = f"GET /x HTTP/1.1\r\nHost: svc\r\n{key}: {_header_value(key, secret)}\r\nAccept: */*\r\n\r\n"
    else:  # email_key
        fragment = {secret: {"calls": rnd.randint(1, 9)}}
    if encoding != "plain" and how != "email_key":
        fragment, how = _encode(fragment, encoding), f"{how}+{encoding}"
    return Plant(secret, fragment, how)


def _encode(fragment: Any, encoding: str) -> str:
    text = fragment if isinstance(fragment, str) else json.dumps(fragment)
    if encoding == "url":
        return quote(text, safe="")
    if encoding == "url2":
        return quote(quote(text, safe=""), safe="")
    if encoding == "json":
        return json.dumps(fragment)  # JSON text held in a string
    if encoding == "json2":
        return json.dumps(json.dumps(fragment))  # double-encoded
    if encoding == "base64":
        return base64.b64encode(text.encode()).decode()
    return base64.urlsafe_b64encode(text.encode()).decode().rstrip("=")


# -- random upstream records ------------------------------------------------------------------------

BUILDERS = {
    "obot-audit": samples.obot_flat,
    "obot-audit-event": samples.obot_audit_event,
    "obot-llm": samples.obot_llm,
    "obot-webhook": samples.webhook_message,
    "axonflow-precheck": samples.precheck,
    "axonflow-llm-call": samples.llm_audit,
    "cloudevents": samples.cloudevent,
}
# Where each format keeps free-form JSON (so a record with a plant still validates).
FREE_FORM: dict[str, tuple[tuple[str, ...], ...]] = {
    "obot-audit": (("requestBody", "params", "arguments"), ("requestHeaders",), ("someFutureField",),
                   ("responseBody", "result")),
    "obot-audit-event": (("details", "request", "body", "params", "arguments"), ("details", "request", "headers"),
                         ("details", "response", "body", "result")),
    "obot-llm": (("requestBody",), ("requestHeaders",), ("requestBody", "messages", 0)),
    "obot-webhook": (("params", "arguments"), ("params", "_meta")),
    "axonflow-precheck": (("request", "context"), ("response",)),
    "axonflow-llm-call": (("request", "metadata"),),
    "cloudevents": (("data",),),
}

def _nested_filler(rnd: random.Random, depth: int = 0) -> Any:
    roll = rnd.random()
    if depth >= 2 or roll < 0.4:
        return rnd.choice((None, True, rnd.randint(-10**6, 10**6), _filler(rnd)))
    if roll < 0.7:
        return [_nested_filler(rnd, depth + 1) for _ in range(rnd.randint(0, 3))]
    return {"f_" + _filler(rnd, 6).replace(" ", ""): _nested_filler(rnd, depth + 1) for _ in range(rnd.randint(0, 3))}


def _dicts(value: Any) -> Iterator[dict[str, Any]]:
    if isinstance(value, dict):
        yield value
        for v in value.values():
            yield from _dicts(v)
    elif isinstance(value, list):
        for v in value:
            yield from _dicts(v)


# Identifiers (context, audit and request ids) are planted in too: one that holds a secret becomes its
# salted hash (gateledger.masking: mask_identifier).
NOT_APPENDED = frozenset({"name", "key", "Name", "tenant_header", "tenant_id", "tenant"})


@st.composite
def planted_records(draw: st.DrawFn, *, valid: bool = False) -> tuple[str, dict[str, Any], list[str]]:
    """(format, record, secrets): a sample record of a random format with 1-3 plants in random places,
    wrapped in random nesting. ``valid``: only in the format's free-form places (the record still validates)."""
    return make_record(lambda seq: draw(st.sampled_from(seq)), random.Random(draw(st.integers(0, 2**64))), valid)


def random_records(seed: int, n: int, *, valid: bool = True,
                   plants: int | None = None) -> list[tuple[str, dict[str, Any], list[str]]]:
    """``n`` planted records, every choice from one seed (for end-to-end runs too slow for many examples;
    ``plants`` per record, else 1-3)."""
    rnd = random.Random(seed)
    return [make_record(rnd.choice, rnd, valid, plants) for _ in range(n)]


def make_record(choose: Choose, rnd: random.Random, valid: bool,
                plants: int | None = None) -> tuple[str, dict[str, Any], list[str]]:
    """A planted record whose format, places and encodings ``choose`` picks, details from ``rnd``."""
    fmt = choose(sorted(BUILDERS))
    record = BUILDERS[fmt]()
    secrets = []
    for i in range(plants or choose((1, 2, 3))):
        plant = make_plant(choose, random.Random(rnd.getrandbits(64)))
        secrets.append(plant.secret)
        fragment: Any = plant.fragment
        for _ in range(rnd.randint(0, 2)):  # random nesting around it
            fragment = {f"f_{i}x": fragment, "f_other": _nested_filler(rnd)} if rnd.random() < 0.5 \
                else [_nested_filler(rnd), fragment]
        if valid:
            target: Any = record
            for p in rnd.choice(FREE_FORM[fmt]):
                target = target[p] if isinstance(p, int) else target.setdefault(p, {})
        else:
            target = rnd.choice(list(_dicts(record)))
        key = f"f_{i}"
        # Not a header's name: renamed, its value would no longer be known to be a secret. Not a tenant's
        # name: an identity, kept as the caller spelled it (Kafka keys, row policies), never masked.
        texts = [k for k, v in target.items() if isinstance(v, str) and k not in NOT_APPENDED]
        if isinstance(fragment, str) and texts and rnd.random() < 0.5:
            # Inside an existing string value (a prompt, an error, a header).
            key = rnd.choice(texts)
            fragment = f"{target[key]} {fragment}{rnd.choice(('', '', '-9', '.', ')', '_x'))}"
        target[key] = fragment
    return fmt, record, secrets


# -- the oracle -------------------------------------------------------------------------------------

_B64_RUN = re.compile(r"[A-Za-z0-9+/_-]{12,}={0,2}")


def _decodings(text: str, depth: int = 0) -> Iterator[str]:
    """The text and everything a reader could decode it into (URL, JSON strings, base64)."""
    yield text
    if depth >= 4:
        return
    once = unquote(text)
    if once != text:
        yield from _decodings(once, depth + 1)
    if '\\"' in text or "\\\\" in text:
        yield from _decodings(text.replace('\\"', '"').replace("\\\\", "\\"), depth + 1)
    try:
        value = json.loads(text)
    except ValueError:
        value = None
    if value is not None and not isinstance(value, int | float | bool):
        for s in strings(value):
            if s != text:
                yield from _decodings(s, depth + 1)
    for run in _B64_RUN.findall(text):
        raw = run.rstrip("=").replace("-", "+").replace("_", "/")
        for cut in range(4):  # the run may end in characters glued to it ("...==-9", "...Q_x")
            part = raw[: len(raw) - cut]
            try:
                plain = base64.b64decode(part + "=" * (-len(part) % 4)).decode("utf-8", "replace")
            except ValueError:
                continue
            yield from _decodings(plain, depth + 1)


def strings(value: Any) -> Iterator[str]:
    """Every string in a JSON-like value, keys included."""
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for k, v in value.items():
            yield str(k)
            yield from strings(v)
    elif isinstance(value, list | tuple):
        for v in value:
            yield from strings(v)


class _Needles:
    """Secrets to look for, case-insensitively, in time proportional to the text, not to the number of
    secrets (the end-to-end search has over 10,000): an occurrence of a secret lies wholly inside a run
    of the characters secrets are made of, so only such runs are scanned, through an index of every
    secret's first ``k`` characters."""

    def __init__(self, secrets: list[str]) -> None:
        lowered = [(x, x.lower()) for x in secrets if x]
        self.k = min((len(low) for _, low in lowered), default=1)
        self.index: dict[str, list[tuple[str, str]]] = {}
        for x, low in lowered:
            self.index.setdefault(low[: self.k], []).append((x, low))
        chars = "".join(sorted({c for _, low in lowered for c in low}))
        self.runs = re.compile(f"[{re.escape(chars)}]{{{self.k},}}") if chars else None

    def hits(self, low: str) -> Iterator[str]:
        """The secrets in ``low`` (lower-cased text)."""
        if self.runs is None:
            return
        k, index = self.k, self.index
        for run in self.runs.finditer(low):
            start, text = run.start(), run.group()
            for i in range(len(text) - k + 1):
                for x, xl in index.get(text[i: i + k], ()):
                    if low.startswith(xl, start + i):
                        yield x


def found(value: Any, secrets: list[str]) -> list[str]:
    """The secrets readable anywhere in ``value``, however encoded."""
    if len(secrets) > 64:
        search: Callable[[str], Iterator[str]] = _Needles(secrets).hits
    else:  # a few: plain substring tests are cheaper than building the index
        lowered = [(x, x.lower()) for x in secrets]

        def search(low: str) -> Iterator[str]:
            return (x for x, xl in lowered if xl in low)
    hits = set()
    for s in set(strings(value)):  # the same text recurs (a record on several topics and in its table)
        for text in _decodings(s):
            hits.update(search(text.lower()))
    return sorted(hits)
