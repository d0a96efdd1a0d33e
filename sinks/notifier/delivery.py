"""POSTing to a webhook: one attempt and what to make of its outcome (delivered, try again when, give up
now), and the notifier's one retry policy around it (exponential backoff, Retry-After honoured)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Literal

import aiohttp
from tenacity import AsyncRetrying, RetryCallState, retry_if_result

from gateledger.retry import Backoff
from sinks.notifier import telemetry
from sinks.notifier.settings import NotifierSettings

log = logging.getLogger(__name__)

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


async def post_with_backoff(session: aiohttp.ClientSession, name: str, url: str, body: bytes,
                            headers: dict[str, str], settings: NotifierSettings, *,
                            give_up: Callable[[float, float], bool], pause: Callable[[float], Awaitable[None]],
                            clock: Callable[[], float]) -> Outcome:
    """POST until delivered or refused for good; between attempts wait ``retry_initial_s`` doubling up to
    ``retry_max_s``, or what the receiver's Retry-After says (gateledger/retry.py). Returns the last
    outcome: a ``retry`` one when ``give_up(seconds since the first attempt, next wait)`` ended the tries.
    The loop is tenacity's, as the ClickHouse sink's is (sinks/clickhouse/service.py)."""
    started = clock()
    backoff = Backoff(settings.retry_initial_s, settings.retry_max_s)

    async def attempt() -> Outcome:
        outcome = await post(session, url, body, headers, settings.timeout_s)
        telemetry.ATTEMPTS.labels(name, outcome.kind).inc()
        return outcome

    def wait(state: RetryCallState) -> float:
        return backoff.delay(state.attempt_number, _outcome(state).retry_after_s)

    def before_sleep(state: RetryCallState) -> None:
        telemetry.RETRYING.labels(name).set(1)
        log.warning("webhook %s: %s; retrying in %.2fs", name, _outcome(state).detail,
                    state.next_action.sleep if state.next_action else 0.0)

    retrying = AsyncRetrying(
        retry=retry_if_result(lambda outcome: outcome.kind == "retry"),
        stop=lambda state: give_up(clock() - started, wait(state)),
        wait=wait,
        sleep=pause,
        before_sleep=before_sleep,
        retry_error_callback=_outcome,  # given up: the last outcome, not an exception
    )
    return await retrying(attempt)


def _outcome(state: RetryCallState) -> Outcome:
    assert state.outcome is not None  # tenacity asks only after an attempt
    return state.outcome.result()
