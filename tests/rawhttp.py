"""Raw HTTP/1.1 requests with header bytes no client library would send (non-ASCII, invalid UTF-8)."""

from __future__ import annotations

import asyncio
from typing import Any
from urllib.parse import urlsplit

import orjson


async def raw_post(base: str, path: str, body: bytes, headers: list[tuple[bytes, bytes]],
                   timeout_s: float = 30.0, *, local_addr: str | None = None,
                   declared: int | None = None) -> tuple[int, dict[str, Any]]:
    """POST with exactly these header bytes; (status, JSON body or {"_text": ...}).

    ``local_addr``: the loopback address to send from (127.0.0.0/8: a caller of its own);
    ``declared``: a Content-Length larger than ``body``, whose rest is never sent (a slow-loris body).
    """
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port,
                                                   local_addr=(local_addr, 0) if local_addr else None)
    try:
        head = [b"POST " + path.encode() + b" HTTP/1.1", b"Host: " + url.netloc.encode(), b"Connection: close",
                b"Content-Length: " + str(declared or len(body)).encode(), *(k + b": " + v for k, v in headers)]
        writer.write(b"\r\n".join(head) + b"\r\n\r\n" + body)
        await writer.drain()
        raw = await asyncio.wait_for(reader.read(), timeout_s)
    finally:
        writer.close()
    status_line, _, rest = raw.partition(b"\r\n")
    _, _, payload = rest.partition(b"\r\n\r\n")
    try:
        answer = orjson.loads(payload)
    except orjson.JSONDecodeError:
        answer = {"_text": payload[:300].decode(errors="replace")}
    return int(status_line.split()[1]), answer


ODD_VALUES: list[bytes] = [
    "Bearer t\u00f6k\u00e9n".encode(),  # valid UTF-8, not ASCII
    b"Bearer \xff\xfe\xfd",  # not UTF-8 at all
    b"Bearer \xc3\x28",  # broken UTF-8 sequence
    "Bearer \u2603\U0001f984".encode(),
    b"Bearer " + b"A" * 7000,  # long
    b"Bearer\ttab",
    b"bearer",
    b"Basic \x80\x81",
    b"sha256=" + "\u00e9".encode() * 32,
    b"sha256=\xff" * 10,
]
