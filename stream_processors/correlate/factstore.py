"""How an interaction's facts are held in the correlate state: one encoded JSON string per fact.

A fact as a Python dict costs about ten times its JSON size on the heap (a dict, its key and value
objects, each event id and timestamp a separate object): measured ~9.5 KB per interaction in
state with dicts, most of it facts (docs/benchmarks.md, "processor state per interaction"). Held
as one ``str`` each, a fact costs its JSON length plus ~50 bytes, and is decoded only when the
interaction is (re-)built. The root key and tenant, the same for every fact of an interaction,
are left out and put back from the interaction's own fields.

State written before this layout (facts as objects) is read too, and re-encoded on its next change.
"""

from __future__ import annotations

from typing import Any

import orjson

from stream_processors.facts import Fact


def encode(fact: Fact, root: str, tenant: str) -> str:
    """The stored form of a fact of the interaction ``root`` of ``tenant``."""
    slim = {k: v for k, v in fact.items()
            if not ((k == "root" and v == root) or (k == "tenant" and v == tenant))}
    return orjson.dumps(slim).decode()


def decode(stored: Any, root: str, tenant: str) -> Fact:
    """The fact back from its stored form (or an object stored by the earlier layout, as it is)."""
    if not isinstance(stored, str):
        return stored
    fact = orjson.loads(stored)
    fact.setdefault("root", root)
    fact.setdefault("tenant", tenant)
    return fact


def facts(st: dict[str, Any]) -> list[Fact]:
    """Every fact of an interaction's state, decoded."""
    root, tenant = st["root"], _tenant(st)
    return [decode(v, root, tenant) for v in st["f"].values()]


def version(st: dict[str, Any], key: str) -> int | None:
    """The version of the stored fact ``key``, None when there is none."""
    stored = st["f"].get(key)
    if stored is None:
        return None
    return int(decode(stored, st["root"], _tenant(st))["v"])


def put(st: dict[str, Any], key: str, fact: Fact) -> None:
    """Store (or replace) a fact."""
    st["f"][key] = encode(fact, st["root"], _tenant(st))


def _tenant(st: dict[str, Any]) -> str:
    return st.get("tn") or st["root"].split("|", 1)[0]
