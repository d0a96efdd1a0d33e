"""One POST and what to make of its outcome: delivered, try again (when), or give up now."""

from __future__ import annotations

import asyncio
from dataclasses import dataclass
from typing import Literal

import aiohttp

RETRYABLE_STATUS = frozenset({408, 425, 429})


@dataclass(frozen=True)
class Outcome:
    kind: Literal["delivered", "retry", "permanent"]
    detail: str
    retry_after_s: float | None = None


def classify(status: int, retry_after: str | None = None) -> Outcome:
    """2xx delivered; 408/425/429/5xx retry (honouring Retry-After seconds); any other status is permanent."""
    if 200 <= status < 300:
        return Outcome("delivered", f"HTTP {status}")
    if status in RETRYABLE_STATUS or status >= 500:
        after = None
        if retry_after and retry_after.strip().isdigit():
            after = float(retry_after.strip())
        return Outcome("retry", f"HTTP {status}", after)
    return Outcome("permanent", f"HTTP {status}: the receiver refuses this request")


async def post(session: aiohttp.ClientSession, url: str, body: bytes, headers: dict[str, str],
               timeout_s: float) -> Outcome:
    """POST once; network errors and timeouts are retryable."""
    try:
        async with session.post(url, data=body, headers=headers,
                                timeout=aiohttp.ClientTimeout(total=timeout_s)) as resp:
            text = (await resp.text())[:300]
            outcome = classify(resp.status, resp.headers.get("Retry-After"))
            return Outcome(outcome.kind, f"{outcome.detail} {text}".strip(), outcome.retry_after_s)
    except (aiohttp.ClientError, asyncio.TimeoutError, OSError) as exc:
        return Outcome("retry", f"{type(exc).__name__}: {exc}")
