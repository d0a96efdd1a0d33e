"""The one backoff policy (gateledger/retry.py): doubling, capped, jittered within bounds, Retry-After first,
and a tenacity wait strategy as it stands."""

from __future__ import annotations

import random

from tenacity import Retrying, retry_if_result, stop_after_attempt

from gateledger.retry import Backoff


def test_the_wait_doubles_from_initial_up_to_max() -> None:
    b = Backoff(0.5, 3.0)
    assert [b.delay(n) for n in (1, 2, 3, 4, 5)] == [0.5, 1.0, 2.0, 3.0, 3.0]
    assert b.delay(10_000) == 3.0, "a long outage does not overflow"


def test_jitter_draws_between_initial_and_the_doubled_wait() -> None:
    b = Backoff(1.0, 8.0, jitter=True)
    rng = random.Random(7)
    for n, high in ((1, 1.0), (2, 2.0), (3, 4.0), (4, 8.0), (9, 8.0)):
        waits = [b.delay(n, rng=rng) for _ in range(200)]
        assert all(1.0 <= w <= high for w in waits)
        assert n == 1 or max(waits) - min(waits) > (high - 1.0) / 2, "spread, not one value"


def test_retry_after_wins_capped_and_junk_is_ignored() -> None:
    b = Backoff(1.0, 8.0, jitter=True)
    assert b.delay(6, "3") == 3.0 and b.delay(1, 5) == 5.0, "shorter or longer than the doubling"
    assert b.delay(1, "60") == 8.0
    assert b.delay(1, "Wed, 21 Oct 2015 07:28:00 GMT") == 1.0


def test_it_is_tenacitys_wait_as_it_stands() -> None:
    slept: list[float] = []
    answers = iter([False, False, False, True])
    result = Retrying(retry=retry_if_result(lambda ok: not ok), stop=stop_after_attempt(5), wait=Backoff(0.25, 0.6),
                      sleep=slept.append)(lambda: next(answers))
    assert result is True and slept == [0.25, 0.5, 0.6]
