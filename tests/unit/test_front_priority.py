"""The gate that puts the stream's front lane first (cdplake.streaming.priority).

Pure Python: the JVM call is py4j's ``GatewayClient.send_command``, replaced here by a
recorder; tests/integration/test_front_priority_spark.py holds a real PySpark call.
"""

from __future__ import annotations

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


def test_a_turn_waits_for_the_running_front_tick():
    p = FrontPriority(max_hold=10)
    assert waited(p.wait_turn) < 0.05  # no tick running
    tick = front_for(p, 0.5)
    assert 0.3 < waited(p.wait_turn) < 2
    tick.join()
    assert not p.front_running


def test_a_long_front_tick_holds_gold_back_for_max_hold_only():
    p = FrontPriority(max_hold=0.3)
    tick = front_for(p, 2)
    assert 0.15 < waited(p.wait_turn) < 1
    tick.join()


def test_an_exempt_thread_and_the_holder_of_a_shared_lock_do_not_wait():
    p = FrontPriority(max_hold=10)
    lock = SharedLock(p)
    tick = front_for(p, 1)
    with p.exempt():
        assert waited(p.wait_turn) < 0.05
    with lock:
        assert waited(p.wait_turn) < 0.05
    assert waited(p.wait_turn) > 0.3  # released: waits again
    tick.join()


def test_a_shared_lock_excludes_other_threads():
    lock = SharedLock(FrontPriority(max_hold=1))
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
    p = FrontPriority(max_hold=10)
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


def test_max_hold_must_not_be_negative():
    with pytest.raises(ValueError, match="max_hold"):
        FrontPriority(max_hold=-1)
