"""Model and provider names as they arrive, reduced to what a price catalog can match.

The same model reaches us as ``gpt-4o-2024-08-06``, ``claude-sonnet-4-5-20250929``,
``us.anthropic.claude-sonnet-4-5-20250929-v1:0`` (a Bedrock cross-region inference profile),
``claude-sonnet-4-5@20250929`` (Vertex AI), ``models/gemini-2.5-pro`` (Google's REST name) or
``anthropic/claude-sonnet-4.5`` (router style). ``model_ref`` keeps the raw name, extracts the
Bedrock endpoint kind (global / geo / in-region: it changes the price) and the snapshot date, and
produces a base name; ``loose`` makes dots and dashes equivalent (``gemini-2.5-pro`` and
``gemini-2-5-pro``) so either spelling matches.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

Endpoint = Literal["global", "geo", "in_region"]

# Bedrock inference-profile prefixes: ``global.`` routes worldwide; the others pin a geography.
_BEDROCK_GEO = ("us-gov", "us", "eu", "apac", "ap", "jp", "au", "ca", "sa", "me", "af")
_BEDROCK_VENDORS = (
    "anthropic", "amazon", "mistral", "meta", "cohere", "ai21", "deepseek", "openai", "qwen", "writer",
    "stability", "twelvelabs", "luma", "moonshot", "minimax", "google", "nvidia",
)
_PROFILE = re.compile(rf"^(global|{'|'.join(re.escape(g) for g in _BEDROCK_GEO)})\.(?=[a-z0-9-]+\.)")
_VENDOR = re.compile(rf"^({'|'.join(_BEDROCK_VENDORS)})\.")
_BEDROCK_VERSION = re.compile(r"-v\d+(?::\d+)?$|:\d+$")
_VERTEX_SNAPSHOT = re.compile(r"@(\d{8}|latest|default)$")
_DATED_ISO = re.compile(r"-(\d{4}-\d{2}-\d{2})$")  # OpenAI snapshots: gpt-4o-2024-08-06
_DATED_COMPACT = re.compile(r"-(20\d{6})$")  # Anthropic snapshots: claude-sonnet-4-5-20250929
_BRACKET_SUFFIX = re.compile(r"\[[^\]]*\]$")  # e.g. claude-sonnet-4-5[1m] (context variant label)


@dataclass(frozen=True)
class ModelRef:
    """A model name taken apart: what was sent, what to match, and the details that change a price."""

    raw: str  # as received, stripped
    base: str  # lowercase, prefixes/suffixes removed: the name catalog entries match
    snapshot: str | None  # the dated snapshot suffix, if any (YYYY-MM-DD or YYYYMMDD)
    endpoint: Endpoint | None  # Bedrock: which kind of endpoint served it
    vendor: str | None  # Bedrock model vendor prefix (anthropic, amazon, ...)

    @property
    def raw_lower(self) -> str:
        return self.raw.lower()


def loose(name: str) -> str:
    """Matching key: lowercase, dots as dashes (``claude-3.5-haiku`` == ``claude-3-5-haiku``)."""
    return name.strip().lower().replace(".", "-")


def model_ref(raw: str) -> ModelRef:
    """Take a model name apart (never fails; unknown shapes pass through lowercased)."""
    text = (raw or "").strip()
    name = text.lower()
    # Google REST / Vertex resource names: .../publishers/google/models/gemini-2.5-pro
    if "models/" in name:
        name = name.rsplit("models/", 1)[1]
    endpoint: Endpoint | None = None
    vendor: str | None = None
    m = _PROFILE.match(name)
    if m:
        endpoint = "global" if m.group(1) == "global" else "geo"
        name = name[m.end():]
    m = _VENDOR.match(name)
    if m:
        vendor = m.group(1)
        endpoint = endpoint or "in_region"
        name = name[m.end():]
        name = _BEDROCK_VERSION.sub("", name)
    # Router / proxy style: "anthropic/claude-sonnet-4.5", "azure/gpt-4o".
    if "/" in name:
        name = name.rsplit("/", 1)[1]
    name = _BRACKET_SUFFIX.sub("", name)
    snapshot: str | None = None
    m = _VERTEX_SNAPSHOT.search(name)
    if m:
        if m.group(1).isdigit():
            snapshot = m.group(1)
        name = name[: m.start()]
    for pattern in (_DATED_ISO, _DATED_COMPACT):
        m = pattern.search(name)
        if m:
            snapshot = snapshot or m.group(1)
            name = name[: m.start()]
            break
    return ModelRef(raw=text, base=name, snapshot=snapshot, endpoint=endpoint, vendor=vendor)


# Model-name prefixes that identify the vendor when the provider field is empty.
_INFER = (
    (re.compile(r"^(gpt-|o\d(?:-|$)|chatgpt|text-embedding|davinci|babbage|codex)"), "openai"),
    (re.compile(r"^claude"), "anthropic"),
    (re.compile(r"^gemini|^gemma"), "google"),
    (re.compile(r"^(mistral|codestral|ministral|magistral|devstral|pixtral|open-mistral|open-mixtral|voxtral)"),
     "mistral"),
    (re.compile(r"^nova-"), "bedrock"),
)


def infer_provider(ref: ModelRef) -> str | None:
    """The provider a model name implies, for events that did not say (None when it does not)."""
    if ref.vendor is not None:
        return "bedrock"  # only Bedrock ids carry a vendor prefix
    for pattern, provider in _INFER:
        if pattern.search(ref.base):
            return provider
    return None
