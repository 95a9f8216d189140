"""The gate that puts the stream's front lane first (cdplake.streaming.priority).

Pure Python: the JVM call is py4j's ``GatewayClient.send_command``, replaced here by a
recorder; tests/integration/test_front_priority_spark.py holds a real PySpark call.
"""

from __future__ import annotations

import functools
import threading
import time

import pytest
from py4j.java_gateway import GatewayClient

from cdplake.streaming import priority as prio
from cdplake.streaming.priority import FrontPriority, SharedLock


def front_for(p: FrontPriority, seconds: float) -> threading.Thread:
    """A front tick of ``seconds`` in another thread; returns once it has begun."""
    begun = threading.Event()

    def tick() -> None:
        with p.front():
            begun.set()
            time.sleep(seconds)

    t = threading.Thread(target=tick)
    t.start()
    begun.wait(5)
    return t


def waited(fn) -> float:
    start = time.monotonic()
    fn()
    return time.monotonic() - start


class Clock:
    """A monotonic clock the test moves by hand."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


def test_a_turn_waits_for_the_running_front_tick():
    p = FrontPriority(gold_share=0.25, burst=10)
    assert waited(p.wait_turn) < 0.05  # no tick running
    tick = front_for(p, 0.5)
    assert 0.3 < waited(p.wait_turn) < 2
    tick.join()
    assert not p.front_running


def test_a_long_front_tick_holds_gold_back_until_its_credit_is_spent():
    # full bucket 0.1 s, spent at 0.5 s per second of hold: 0.2 s of hold, then gold runs
    p = FrontPriority(gold_share=0.5, burst=0.1)
    tick = front_for(p, 2)
    assert 0.1 < waited(p.wait_turn) < 1
    assert waited(p.wait_turn) < 0.05  # spent: no more waiting in this tick
    tick.join()


def test_the_budget_leaves_gold_its_share_of_a_front_lane_that_ticks_back_to_back():
    clock = Clock()
    p = FrontPriority(gold_share=0.25, burst=10, clock=clock)
    assert p.hold_left() == 0  # no tick running
    held = []
    for _ in range(40):  # 10-second ticks back to back for 400 s
        with p.front():
            start = clock.now
            # the tick holds gold while hold_left() > 0, then stops holding for its rest
            clock.now += min(p.hold_left(), 10)
            p.hold_left()
            held.append(clock.now - start)
            clock.now = start + 10
    # a full bucket first: 10 s of credit spent at 0.25 s per second of hold, 4 ticks whole
    assert held[:4] == pytest.approx([10] * 4)
    # then gold gets its quarter: over every stretch at most (1 - gold_share) of it plus the
    # burst is held, and over the whole run no less than that minus the burst
    for start in range(len(held) - 8):
        assert sum(held[start : start + 8]) <= 0.75 * 80 + 10 + 1e-6
    assert 0.75 * 400 - 10 <= sum(held) <= 0.75 * 400 + 10 + 1e-6
    assert min(held[4:]) < 10  # the hold did stop short: gold ran beside some ticks


def test_a_front_lane_that_ticks_now_and_then_holds_gold_for_whole_ticks():
    clock = Clock()
    p = FrontPriority(gold_share=0.25, burst=10, clock=clock)
    for _ in range(20):  # a 10-second tick every 15 s: 2.5 s of credit spent, 3.75 s earned
        with p.front():
            clock.now += 9.99
            assert p.hold_left() > 0  # still holding at the tick's end
            clock.now += 0.01
        clock.now += 5


def test_gold_share_one_never_holds():
    p = FrontPriority(gold_share=1, burst=10)
    tick = front_for(p, 1)
    assert waited(p.wait_turn) < 0.05
    tick.join()


def test_an_exempt_thread_and_the_holder_of_a_shared_lock_do_not_wait():
    p = FrontPriority(gold_share=0.25, burst=10)
    lock = SharedLock(p)
    tick = front_for(p, 1)
    with p.exempt():
        assert waited(p.wait_turn) < 0.05
    with lock:
        assert waited(p.wait_turn) < 0.05
    assert waited(p.wait_turn) > 0.3  # released: waits again
    tick.join()


def test_a_shared_lock_excludes_other_threads():
    lock = SharedLock(FrontPriority(gold_share=0.25, burst=1))
    inside: list[int] = []
    overlap: list[bool] = []

    def hold(n: int) -> None:
        with lock:
            inside.append(n)
            overlap.append(len(inside) > 1)
            time.sleep(0.05)
            inside.remove(n)

    threads = [threading.Thread(target=hold, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert overlap == [False] * 4


def test_only_gated_threads_wait_at_jvm_calls(monkeypatch):
    calls: list[tuple[str, float]] = []

    def recorder(self, command, *args, **kwargs):
        calls.append((threading.current_thread().name, time.monotonic()))
        return "ok"

    monkeypatch.setattr(GatewayClient, "send_command", recorder)
    monkeypatch.setattr(prio, "_installed", False)  # wrap the recorder, not py4j's own
    p = FrontPriority(gold_share=0.25, burst=10)
    done: dict[str, float] = {}

    def gold() -> None:
        with p.gated():
            assert GatewayClient.send_command(None, "c\n") == "ok"
        done["gold"] = time.monotonic()

    def other() -> None:
        GatewayClient.send_command(None, "c\n")
        done["other"] = time.monotonic()

    tick = front_for(p, 0.6)
    began = time.monotonic()
    threads = [threading.Thread(target=gold, name="gold"), threading.Thread(target=other, name="other")]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    tick.join()
    assert done["other"] - began < 0.3  # not gated: straight through
    assert done["gold"] - began > 0.4  # gated: after the tick
    assert sorted(name for name, _ in calls) == ["gold", "other"]
    # outside the block the thread is not gated any more
    assert prio._GATES == {}


@pytest.mark.parametrize(
    ("share", "burst", "match"), [(0, 10, "gold_share"), (1.5, 10, "gold_share"), (0.25, -1, "burst")]
)
def test_the_budget_must_make_sense(share, burst, match):
    with pytest.raises(ValueError, match=match):
        FrontPriority(gold_share=share, burst=burst)


def test_a_tick_holds_gold_for_two_bursts_at_most_whatever_credit_is_left():
    clock = Clock()
    p = FrontPriority(gold_share=0.01, burst=10, clock=clock)  # credit for 1,000 s of hold
    with p.front():
        assert p.hold_left() == pytest.approx(20)
        clock.now += 19.9
        assert p.hold_left() == pytest.approx(0.1)
        clock.now += 0.1
        assert p.hold_left() == 0  # gold runs beside the rest of this tick
        clock.now += 5
        assert p.hold_left() == 0
    with p.front():  # the next tick holds again
        assert p.hold_left() == pytest.approx(20)


def test_a_gated_thread_computing_a_cached_property_does_not_wait(monkeypatch):
    # functools.cached_property (Python 3.11) holds one lock per class attribute while it
    # computes, for every instance: pausing there would pause any thread reading it
    monkeypatch.setattr(GatewayClient, "send_command", lambda self, command, *a, **k: "ok")
    monkeypatch.setattr(prio, "_installed", False)
    p = FrontPriority(gold_share=0.25, burst=10)

    class Frame:
        @functools.cached_property
        def schema(self) -> str:
            return GatewayClient.send_command(None, "schema\n")  # a JVM call

    took: dict[str, float] = {}

    def gold() -> None:
        with p.gated():
            took["property"] = waited(lambda: Frame().schema)
            took["plain call"] = waited(lambda: GatewayClient.send_command(None, "c\n"))

    tick = front_for(p, 1.0)
    lane = threading.Thread(target=gold)
    lane.start()
    lane.join(10)
    tick.join()
    assert took["property"] < 0.3  # straight through
    assert took["plain call"] > 0.5  # the same thread waits outside the property
