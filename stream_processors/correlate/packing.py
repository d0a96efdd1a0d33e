"""How a decided interaction is held until retention: one packed string instead of a dict of facts.

After its first emission an interaction is only read again if a late fact arrives (rare) or when
its retention ends, yet it stays in state for ``retention_s`` (24 h by default) — almost all of
the correlate state at a steady rate is such interactions. Open, an interaction is a dict with one
JSON string per fact (correlate/factstore.py): ~2.7 KB of heap. Packed, it is one ASCII string:

    <due>,<last>,<em>,[!]<base64 of raw DEFLATE, with a preset dictionary, of the state's JSON>

``due``, ``last`` and ``em`` stay readable without unpacking, so the retention timer, the expiry
check and a rebuild after a restart never decompress. ``!`` marks a tenant that the root key does
not give back (a tenant containing ``|``), whose timer needs the unpacked ``tn``. Unpacking gives
the exact dict that was packed (the facts' strings included), so everything built from it is the
same. The preset dictionary raises the compression of these small payloads (measured: 1.7 KB of
JSON -> ~450 B of DEFLATE, ~630 B without it); **it must never change**: packed state in
changelogs depends on it. A different one needs a new format, told apart by its first character.
"""

from __future__ import annotations

import base64
import zlib
from typing import Any

import orjson

# Typical fact text (correlate/factstore.py: facts as JSON strings inside the state's JSON), nearest
# the end what recurs most. Frozen: see the module docstring.
_ZDICT = (
    b'"kind\\":\\"webhook\\",\\"dec\\":\\"rejected\\",\\"phase\\":\\"request\\",\\"gate\\":\\"mcp_check_input\\",'
    b'\\"br\\":null,\\"bf\\":{\\"kind\\":\\"gone\\",\\"ids\\":[],'
    b'\\"kind\\":\\"policy\\",\\"src\\":\\"axonflow/|policy\\",\\"ok\\":true,\\"br\\":null,\\"pol\\":[\\"pii_detection\\"]}",'
    b'\\"kind\\":\\"llm\\",\\"src\\":\\"axonflow/|llm\\",\\"sess\\":null,\\"user\\":null,\\"client\\":\\"\\",'
    b'\\"model\\":\\"gpt-4o\\",\\"st\\":\\"success\\",\\"err\\":false,\\"tin\\":,\\"tout\\":,\\"ttot\\":}",'
    b'\\"kind\\":\\"mcp\\",\\"src\\":\\"obot/default/mcp|mcp\\",\\"ctx\\":null,\\"sess\\":\\"sess-\\",\\"user\\":\\"user-\\",'
    b'\\"method\\":\\"tools/call\\",\\"tool\\":\\"\\",\\"server\\":\\"\\",\\"sid\\":\\"\\",\\"rpc\\":\\"\\",'
    b'\\"st\\":\\"success\\",\\"complete\\":true,\\"wrej\\":0,\\"wf\\":[],\\"wrf\\":[],\\"ran\\":true,\\"exe\\":true,\\"err\\":false}",'
    b'{"tn":"","f":{"":"{\\"kind\\":\\"\\",\\"key\\":\\"\\",\\"v\\":1,\\"ids\\":[\\"\\"],\\"t\\":17,\\"te\\":17,\\"rcv\\":17,'
    b'\\"src\\":\\"\\",\\"req\\":\\"req-\\",\\"trace\\":\\"\\",\\"ctx\\":\\"ctx-\\",'
)
_WBITS = -15  # raw DEFLATE: no zlib header or checksum (the changelog and Kafka carry their own)


def is_packed(value: Any) -> bool:
    """Whether a state value is a packed interaction."""
    return isinstance(value, str)


def pack(st: dict[str, Any], tenant_from_root: str) -> str:
    """The packed form of an emitted interaction's state (``due`` set)."""
    body = {k: v for k, v in st.items() if k not in ("root", "due", "last", "em")}
    c = zlib.compressobj(3, zlib.DEFLATED, _WBITS, 8, zlib.Z_DEFAULT_STRATEGY, _ZDICT)
    blob = base64.b64encode(c.compress(orjson.dumps(body)) + c.flush()).decode("ascii")
    flag = "" if st.get("tn", tenant_from_root) == tenant_from_root else "!"
    return f"{st['due']},{st['last']},{st['em']},{flag}{blob}"


def header(packed: str) -> tuple[int, int, int, bool]:
    """``due``, ``last``, ``em`` and whether the tenant is only in the packed body, without unpacking."""
    due, last, em, rest = packed.split(",", 3)
    return int(due), int(last), int(em), rest.startswith("!")


def unpack(packed: str, root: str) -> dict[str, Any]:
    """The interaction's state dict back, exactly as it was packed."""
    due, last, em, rest = packed.split(",", 3)
    d = zlib.decompressobj(_WBITS, _ZDICT)
    body = orjson.loads(d.decompress(base64.b64decode(rest.lstrip("!"))) + d.flush())
    return {"root": root, **body, "em": int(em), "due": int(due), "last": int(last)}
