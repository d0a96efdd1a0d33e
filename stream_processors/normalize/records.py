"""How the normalize stage's join states are held: one short ``str`` per entry, no dicts.

In memory and in the changelog, an Obot exchange (``m|``) and an AxonFlow context (``c|``) are one
string each, in one of two forms:
  - while something is still to be decided: a JSON array of the fields by position, times after the
    first as differences, the event ids an exchange folded in as short digests (``id_digest``), an
    audit's root written once when it is its pre-check's, tenant and source left out when the key
    says them;
  - once only the retention is left (a merged exchange; a ``settled`` context): a comma-separated
    line of what is still read (``M,g,last,due,ids`` / ``S,last,due[,tenant]``).
A dict per entry (with one per pre-check, audit, trail row) cost ~830 and ~1,240 B of heap per
interaction, these strings ~220 and ~160 (docs/operations.md, "Memory of the stream processors").
The state machines work on the dict ``decode_*`` returns and store it with ``encode_*`` after each
change; a value of the older layout (the dict itself, as an older worker wrote it to the changelog)
decodes to the same dict, so an upgraded worker reads its state as is (``NormalizePartition.load``
rewrites it in this layout).
"""

from __future__ import annotations

import base64
from hashlib import blake2b
from typing import Any

import orjson

from stream_processors.normalize.keys import NOT_RAISED

_SAME = 1  # an audit's root written as this: the same as its pre-check's
# What a settled context's pre-check reads as (``decode_context``).
_GONE_PRE: dict[str, Any] = {"eid": None, "t": None, "exp": None, "ok": False, "root": None, "rid": None,
                             "tid": None, "cid": None, "uid": None}


def id_digest(event_id: str) -> str:
    """Short digest of an event id folded into an exchange (72 bits: an exchange holds a few ids, so a
    false "already folded in" needs a 2^-72 coincidence between two ids of one exchange)."""
    d = blake2b(event_id.encode("utf-8", "surrogatepass"), digest_size=9).digest()
    return base64.b64encode(d).decode("ascii")


# -- Obot MCP exchanges (obot_mcp.py) ------------------------------------------------------------

_MCP_TYPE = "obot.mcp.call"  # the one envelope type whose halves are merged (obot_mcp.py)


def _from_key(key: str) -> tuple[str, str] | None:
    """Tenant and ``source|type`` as the exchange key spells them (``mcp.exchange_key``: tenant first,
    then the source), or None when a ``|`` inside either makes the key ambiguous."""
    parts = key.split("|")
    return (parts[1], f"{parts[2]}|{_MCP_TYPE}") if len(parts) == 6 else None


def encode_exchange(key: str, st: dict[str, Any]) -> str:
    """An exchange's state as stored: tenant and source left out when its key says them, and once both
    halves are merged only what a later record of the same exchange reads (generation, ids, times)."""
    last = st["last"]
    due, t, tn, src = st.get("due"), st.get("t"), st.get("tn"), st.get("src", "")
    rcv = st.get("rcv", last) - last
    if _from_key(key) == (tn, src):
        tn = src = None
    if st["request"] is True and st["response"] is True and not st["open"]:
        # Merged: a record of this exchange now only checks its ids, or opens the next generation
        # (``_add_half``); the receive time and the lone half's time are read while a half waits.
        if src is None and due is not None:
            return f"M,{st['g']},{last},{due - last},{' '.join(st['ids'])}"
        rcv, t = 0, None
    return orjson.dumps([st["g"], st["request"], st["response"], st["ids"], int(st["open"]), last, rcv, tn,
                         src, None if due is None else due - last, t]).decode()


def decode_exchange(key: str, value: Any) -> dict[str, Any]:
    """An exchange's state as the merge works on it (from either layout)."""
    if isinstance(value, dict):  # the older layout: full event ids
        st = dict(value)
        st["ids"] = [id_digest(i) for i in st.get("ids", ())]
        return st
    if value[0] == "M":
        _m, g, last_s, due_s, ids = value.split(",", 4)
        last = int(last_s)
        tn, src = _from_key(key) or (None, "")
        return {"g": int(g), "request": True, "response": True, "ids": ids.split(" ") if ids else [],
                "open": False, "last": last, "rcv": last, "tn": tn, "src": src, "due": last + int(due_s),
                "t": None}
    g, req, resp, ids, open_, last, rcv, tn, src, due, t = orjson.loads(value)
    if src is None:
        tn, src = _from_key(key) or (tn, "")
    return {"g": g, "request": req, "response": resp, "ids": ids, "open": bool(open_), "last": last,
            "rcv": last + rcv, "tn": tn, "src": src, "due": None if due is None else last + due, "t": t}


# -- AxonFlow contexts (axonflow.py, axonflow_trail.py) -----------------------------------------

def settled(st: dict[str, Any]) -> bool:
    """Whether a context's join has nothing left to decide but its retention.

    Pre-check and audit are both in (a replay of either, and a trail row, are then ignored: the
    ``return`` at the top of ``_precheck``, ``_audit``, ``_trail_row``), no audit is held for its
    pre-check and no unaudited finding can still be raised (``_context_next_due``), so no untapped
    finding either (``_untapped_pending``: no pre-check) and no gap to fill (``_fill_pending``: no
    audit). What such a context still reads is that both are in, its newest time and its due: the
    ids, times, roots, request/trace/client/user of both and the trail row are dropped.
    """
    pre, aud = st["pre"], st["aud"]
    return (pre is not None and aud is not None and st["held"] is None and st.get("oheld") is None
            and not (pre["ok"] and st["una"] == NOT_RAISED and aud["t"] > pre["exp"]))


def encode_context(st: dict[str, Any]) -> str:
    """A context's join state as stored (only what is still read, once ``settled``)."""
    pre, aud, ent = st["pre"], st["aud"], st.get("ent")
    last, due = st["last"], st.get("due")
    if settled(st) and due is not None:
        tn = st.get("tn") or ""
        return f"S,{last},{due - last}" + (f",{tn}" if "|" in tn else "")
    return orjson.dumps([
        None if pre is None else [pre["eid"], pre["t"], pre["exp"] - pre["t"], pre["ok"], pre["root"],
                                  pre["rid"], pre["tid"], pre["cid"], pre["uid"]],
        None if aud is None else [aud["eid"], aud["t"],
                                  _SAME if pre is not None and aud["root"] == pre["root"] else aud["root"]],
        _held(st["held"]), st["una"], st["orph"], last, st.get("tn"), None if due is None else due - last,
        None if ent is None else [ent["eid"], ent["t"], ent["cid"], ent["m"], ent["u"], ent.get("pc", 0),
                                  ent.get("env"), ent.get("rcv")],
        _held(st.get("oheld")),
    ]).decode()


def decode_context(value: Any) -> dict[str, Any]:
    """A context's join state as the join works on it (from either layout)."""
    if isinstance(value, dict):  # the older layout
        return dict(value)
    if value[0] == "S":
        # Settled: pre-check and audit are in, and nothing but their presence is read again. The
        # pre-check reads as not approving, which is what keeps the unaudited check off (``settled``).
        parts = value.split(",", 3)
        last = int(parts[1])
        return {"pre": dict(_GONE_PRE), "aud": {"eid": None, "t": None, "root": None}, "held": None,
                "una": NOT_RAISED, "orph": NOT_RAISED, "last": last,
                "tn": parts[3] if len(parts) > 3 else None, "due": last + int(parts[2])}
    p, a, held, una, orph, last, tn, due, e, oheld = orjson.loads(value)
    pre = None if p is None else {"eid": p[0], "t": p[1], "exp": p[1] + p[2], "ok": p[3], "root": p[4],
                                  "rid": p[5], "tid": p[6], "cid": p[7], "uid": p[8]}
    aud = None if a is None else {"eid": a[0], "t": a[1],
                                  "root": pre["root"] if a[2] == _SAME and pre else a[2]}
    st: dict[str, Any] = {"pre": pre, "aud": aud, "held": _unheld(held), "una": una, "orph": orph,
                          "last": last, "tn": tn, "due": None if due is None else last + due}
    if e is not None:
        st["ent"] = {"eid": e[0], "t": e[1], "cid": e[2], "m": e[3], "u": e[4], "pc": e[5], "env": e[6],
                     "rcv": e[7]}
    if oheld is not None:
        st["oheld"] = _unheld(oheld)
    return st


def _held(h: dict[str, Any] | None) -> list[Any] | None:
    return None if h is None else [h["env"], h["rcv"]]


def _unheld(h: list[Any] | None) -> dict[str, Any] | None:
    return None if h is None else {"env": h[0], "rcv": h[1]}


def decode(key: str, value: Any) -> dict[str, Any]:
    """The state of an ``m|`` or ``c|`` entry."""
    return decode_exchange(key, value) if key[:2] == "m|" else decode_context(value)
