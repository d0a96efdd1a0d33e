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
    head = [b"POST " + path.encode() + b" HTTP/1.1", b"Host: " + urlsplit(base).netloc.encode(),
            b"Connection: close", b"Content-Length: " + str(declared or len(body)).encode(),
            *(k + b": " + v for k, v in headers)]
    return await raw_request(base, b"\r\n".join(head) + b"\r\n\r\n" + body, timeout_s, local_addr=local_addr)


async def raw_request(base: str, data: bytes, timeout_s: float = 30.0, *,
                      local_addr: str | None = None) -> tuple[int, dict[str, Any]]:
    """Send exactly these bytes on a new connection; (status, JSON body or {"_text": ...})."""
    url = urlsplit(base)
    reader, writer = await asyncio.open_connection(url.hostname, url.port,
                                                   local_addr=(local_addr, 0) if local_addr else None)
    try:
        writer.write(data)
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


def malformed_requests(path: str) -> list[bytes]:
    """Requests to ``path`` that aiohttp refuses before any handler runs (its HTTP parser's 400s, each
    a rule of aiohttp/_http_parser.pyx / http_parser.py, and the 417 of an unknown Expect)."""
    p = path.encode()
    ok = b"POST " + p + b" HTTP/1.1\r\nHost: h\r\nConnection: close\r\n"
    return [
        b"P\x00ST " + p + b" HTTP/1.1\r\nHost: h\r\n\r\n",  # a method that is not a token
        b"POST " + p + b" HTTP/9.9\r\nHost: h\r\n\r\n",  # no such HTTP version
        b"POST " + p + b"\xff HTTP/1.1\r\nHost: h\r\n\r\n",  # a byte not allowed in a path
        b"POST " + p + b" HTTP/1.1\nHost: h\n\n",  # bare LF line ends
        ok + b"X-Gateledger-Tenant acme\r\n\r\n",  # a header line without a colon
        ok + b"X Tenant: acme\r\n\r\n",  # a space in a header name
        ok + b"Authorization: Bearer a\x01b\r\n\r\n",  # a control character in a value
        ok + b"Content-Length: abc\r\n\r\n",
        ok + b"Content-Length: 2\r\nContent-Length: 3\r\n\r\nab",
        ok + b"Content-Length: 2\r\nTransfer-Encoding: chunked\r\n\r\nab",  # request smuggling
        ok + b"Transfer-Encoding: chunked\r\n\r\nzz\r\nab\r\n0\r\n\r\n",  # not a chunk size
        ok + b"Transfer-Encoding: gzip\r\n\r\n",
        ok + b" folded: line\r\n\r\n",  # obsolete line folding
        ok + b"X-Long: " + b"a" * 9000 + b"\r\n\r\n",  # a header line over 8190 bytes
        ok + b"".join(b"X-H%d: v\r\n" % i for i in range(200)) + b"\r\n",  # too many headers
        b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03",  # TLS on the plain port
        ok + b"Expect: 200-nope\r\nContent-Length: 2\r\n\r\nab",  # 417: aiohttp's expect handler
    ]
