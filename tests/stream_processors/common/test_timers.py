"""The timer heap (stream_processors/common/timers.py): its lane of in-order entries and its heap
together give exactly the order of one heap of (due, key)."""

from __future__ import annotations

import heapq
import random

from stream_processors.common import timers
from stream_processors.common.timers import TimerHeap


def test_entries_come_out_as_from_one_heap_whatever_the_push_order(monkeypatch) -> None:
    monkeypatch.setattr(timers, "_COMPACT", 8)  # compact the lane often
    rng = random.Random(7)
    for _ in range(200):
        t, ref = TimerHeap(), []
        clock = 0
        for _ in range(rng.randint(1, 400)):
            r = rng.random()
            if r < 0.6:
                # Mostly in order (retentions), some earlier (short timeouts), equal dues with other keys.
                due = clock + rng.choice([1000, 1000, 1000, rng.randint(0, 50), 0])
                clock += rng.randint(0, 3)
                key = f"k{rng.randint(0, 30)}"
                t.push(due, key)
                heapq.heappush(ref, (due, key))
            elif r < 0.9 and ref:
                assert t.next_due() == ref[0][0]
                assert t.pop() == heapq.heappop(ref)
            else:
                limit = clock + rng.randint(-5, 1200)
                want = []
                while ref and ref[0][0] <= limit:
                    want.append(heapq.heappop(ref))
                assert t.pop_due(limit) == want
            assert len(t) == len(ref)
        assert t.pop_due(10**18) == sorted(ref)
        assert t.next_due() is None and len(t) == 0


def test_entries_in_about_due_order_stay_out_of_the_heap() -> None:
    t = TimerHeap()
    for i in range(100):
        t.push(1000 + i - (i % 3) * 2, f"k{i}")  # out of order by a little
    assert not t._heap and len(t) == 100
    lanes = len(t._lanes)
    assert lanes < timers.LANES
    for i in range(timers.LANES + 1):
        t.push(500 - i, f"early{i}")  # each behind every lane's last: new lanes, then the heap
    assert len(t._lanes) == timers.LANES and len(t._heap) == lanes + 1
    assert len(t) == 100 + timers.LANES + 1
    assert t.pop() == (500 - timers.LANES, f"early{timers.LANES}")
