"""Tee mode of the shim endpoint: forwarding audit batches to the real Obot.

Obot stays the authority for the shim's per-server audit tokens (it generates them; gateledger
cannot know them in advance). A token gateledger does not know is checked by POSTing an empty
array with it: Obot authenticates the token first and stores nothing for ``[]``. Accepted tokens
are remembered for a while so the check costs one extra request per token per cache period.
"""

from __future__ import annotations

import hashlib
import time
from collections.abc import Callable

import aiohttp

from producers import telemetry
from producers.ingest.common import HttpError


class ObotForwarder:
    """Forwards raw shim batches to Obot's ``POST /api/mcp-audit-logs`` with the caller's token."""

    def __init__(
        self,
        url: str,
        session: aiohttp.ClientSession,
        timeout_s: float,
        token_cache_s: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.url = url
        self.session = session
        self.timeout = aiohttp.ClientTimeout(total=timeout_s)
        self.token_cache_s = token_cache_s
        self._clock = clock
        self._trusted: dict[bytes, float] = {}

    async def _post(self, body: bytes, token: str) -> tuple[int, str]:
        headers = {"Authorization": f"Bearer {token}", "Content-Type": "application/json"}
        try:
            async with self.session.post(self.url, data=body, headers=headers, timeout=self.timeout) as resp:
                return resp.status, await resp.text(errors="replace")
        except TimeoutError as exc:
            telemetry.OBOT_FORWARD.labels(outcome="unreachable").inc()
            raise HttpError(504, "Obot did not answer in time", upstream=self.url) from exc
        except (aiohttp.ClientError, OSError) as exc:
            telemetry.OBOT_FORWARD.labels(outcome="unreachable").inc()
            raise HttpError(502, f"Obot unreachable: {exc.__class__.__name__}", upstream=self.url) from exc

    async def token_valid(self, token: str) -> bool:
        """True when Obot accepts this audit token (cached); HttpError when Obot cannot say."""
        key = hashlib.sha256(token.encode()).digest()
        now = self._clock()
        if self._trusted.get(key, 0.0) > now:
            return True
        status, text = await self._post(b"[]", token)
        if status == 200:
            self._trusted[key] = now + self.token_cache_s
            return True
        if status in (401, 403):
            return False
        raise HttpError(502, f"Obot answered {status} to a token check: {text[:300]}", upstream_status=status)

    async def forward(self, body: bytes, token: str) -> None:
        """Send the batch as received; HttpError carrying Obot's status unless Obot answered 200."""
        status, text = await self._post(body, token)
        if status == 200:
            telemetry.OBOT_FORWARD.labels(outcome="ok").inc()
            return
        telemetry.OBOT_FORWARD.labels(outcome="rejected").inc()
        if status in (401, 403):
            self.forget(token)  # revoked in Obot since it was checked: ask again next time
        # Obot's own status goes back to the shim (which retries anything but 200).
        code = status if 400 <= status < 600 else 502
        raise HttpError(code, f"Obot rejected the batch ({status}): {text[:500]}", upstream_status=status)

    def forget(self, token: str) -> None:
        """Drop a cached token (Obot rejected it after all)."""
        self._trusted.pop(hashlib.sha256(token.encode()).digest(), None)
