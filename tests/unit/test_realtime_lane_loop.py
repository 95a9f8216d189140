"""The two-lane loop of the stream (cdplake.streaming.cycle._two_lanes) and the segment split.

The lanes' Spark work has its own integration tests (test_realtime_lane.py, the stream tests);
here the lane functions are replaced by recorders to pin the loop's control flow: which lane
runs what, with which arguments, how it stops and how a failure surfaces.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

import pytest

from cdplake.config.segments import load_segments_config
from cdplake.config.streaming import StreamingConfig
from cdplake.streaming import cycle
from cdplake.streaming.priority import SharedLock
from cdplake.streaming.realtime_lane import RealtimeRefresh, is_realtime, split_segments

CONF = Path(__file__).resolve().parents[2] / "conf"


def test_the_repo_segments_split_into_browsing_now_and_the_rest():
    realtime, other = split_segments(load_segments_config(CONF))
    assert [d.id for d in realtime.segments] == ["browsing_now"]
    assert "browsing_now" not in [d.id for d in other.segments]
    assert len(other.segments) >= 6
    assert realtime.purposes == other.purposes


def test_a_segment_is_real_time_by_its_condition_or_its_features():
    base = next(d for d in load_segments_config(CONF).segments if d.id == "recent_purchasers")
    from dataclasses import replace

    assert not is_realtime(base)
    assert is_realtime(replace(base, condition="product_views_1h > 0 AND order_count > 0"))
    assert is_realtime(replace(base, features=("product_views_1h",)))
    # a longer column name that contains the feature's name is not the feature
    assert not is_realtime(replace(base, condition="product_views_1h_total > 0", features=()))


class Recorder:
    """Stands in for run_cycle and _front_tick; records the calls and the threads they ran in."""

    def __init__(self, fail_front_at: int | None = None, fail_gold_at: int | None = None) -> None:
        self.gold: list[dict] = []
        self.front: list[tuple[int, str]] = []
        self.run_ids: list[str] = []
        self.fail_front_at = fail_front_at
        self.fail_gold_at = fail_gold_at

    def run_cycle(self, spark, env, ctx, **kwargs):
        n = len(self.gold) + 1
        self.gold.append({**kwargs, "thread": threading.current_thread().name})
        if n == self.fail_gold_at:
            raise RuntimeError("identity broke")
        time.sleep(0.05)
        return cycle.CycleResult(n, committed=True)

    def front_tick(self, spark, env, ctx, tick, moment, lock, run_id, memo=None):
        self.front.append((tick, threading.current_thread().name))
        self.run_ids.append(run_id)
        if tick == self.fail_front_at:
            raise RuntimeError("bronze broke")
        return cycle.FrontTick(tick, 0, RealtimeRefresh())


class FakeSpark:
    """Only what the loop itself calls on the session: the fair-scheduler pool per thread."""

    def __init__(self) -> None:
        self.sparkContext = self
        self.pools: list[tuple[str, str | None]] = []

    def setLocalProperty(self, key: str, value: str | None) -> None:  # noqa: N802 (Spark's name)
        assert key == "spark.scheduler.pool"
        self.pools.append((threading.current_thread().name, value))


def ctx_with_lane():
    return cycle.CycleContext(
        streaming=StreamingConfig(trigger="1 second"),
        segments=load_segments_config(CONF),
        identity=None,  # type: ignore[arg-type]  # the recorders never read it
        features=None,  # type: ignore[arg-type]
    )


@pytest.fixture(autouse=True)
def fresh_lake(monkeypatch):
    """No committed cycle yet: the loop reads the progress table once, before the lanes start."""
    monkeypatch.setattr(cycle, "last_progress", lambda spark, env: None)


@pytest.fixture
def recorder(monkeypatch):
    rec = Recorder()
    monkeypatch.setattr(cycle, "run_cycle", rec.run_cycle)
    monkeypatch.setattr(cycle, "_front_tick", rec.front_tick)
    return rec


def test_gold_cycles_run_in_their_own_thread_and_leave_the_real_time_segments(recorder):
    fronts: list[cycle.FrontTick] = []
    spark = FakeSpark()
    results = cycle.run_stream_pipeline(
        spark, None, trigger="1 second", max_cycles=2, ctx=ctx_with_lane(), on_front=fronts.append
    )
    main = threading.current_thread().name
    assert sorted(spark.pools, key=str) == sorted(
        [("cdplake-gold-lane", "gold"), (main, "front"), (main, None)], key=str
    )
    assert [r.cycle_id for r in results] == [1, 2]
    assert [g["thread"] for g in recorder.gold] == ["cdplake-gold-lane"] * 2
    assert all(
        g["front_sources"] == ("email", "orders", "crm") and g["leave_segments"] == {"browsing_now"}
        for g in recorder.gold
    )
    lock = recorder.gold[0]["membership_lock"]
    assert isinstance(lock, SharedLock) and recorder.gold[1]["membership_lock"] is lock
    # the front ran in the calling thread, every trigger while gold ran (2 cycles >= 1 s apart)
    assert recorder.front and {t for _, t in recorder.front} == {threading.current_thread().name}
    assert [f.tick for f in fronts] == [t for t, _ in recorder.front] == list(range(1, len(fronts) + 1))


def test_without_the_lane_whole_cycles_run_in_the_calling_thread(recorder):
    from dataclasses import replace

    ctx = ctx_with_lane()
    ctx = replace(ctx, streaming=replace(ctx.streaming, realtime_lane=False))
    results = cycle.run_stream_pipeline(FakeSpark(), None, trigger="1 second", max_cycles=2, ctx=ctx)
    assert [r.cycle_id for r in results] == [1, 2]
    assert recorder.front == []
    assert [g["thread"] for g in recorder.gold] == [threading.current_thread().name] * 2
    assert all("front_sources" not in g for g in recorder.gold)


def test_available_now_never_splits(recorder):
    results = cycle.run_stream_pipeline(None, None, trigger="availableNow", ctx=ctx_with_lane())
    assert len(results) == 1 and recorder.front == [] and "front_sources" not in recorder.gold[0]


def test_a_failing_gold_cycle_stops_the_front_and_is_raised(monkeypatch):
    rec = Recorder(fail_gold_at=2)
    monkeypatch.setattr(cycle, "run_cycle", rec.run_cycle)
    monkeypatch.setattr(cycle, "_front_tick", rec.front_tick)
    with pytest.raises(RuntimeError, match="identity broke"):
        cycle.run_stream_pipeline(FakeSpark(), None, trigger="1 second", ctx=ctx_with_lane())
    assert len(rec.gold) == 2


def test_a_failing_front_waits_for_the_gold_cycle_then_is_raised(monkeypatch):
    rec = Recorder(fail_front_at=1)
    monkeypatch.setattr(cycle, "run_cycle", rec.run_cycle)
    monkeypatch.setattr(cycle, "_front_tick", rec.front_tick)
    with pytest.raises(RuntimeError, match="bronze broke"):
        cycle.run_stream_pipeline(FakeSpark(), None, trigger="1 second", ctx=ctx_with_lane())
    # the gold lane was stopped and joined before the failure surfaced
    assert not any(t.name == "cdplake-gold-lane" for t in threading.enumerate())


def test_should_stop_ends_both_lanes_between_steps(recorder):
    asked = []

    def should_stop() -> bool:
        return len(recorder.front) >= 2 or bool(asked)

    results = cycle.run_stream_pipeline(
        FakeSpark(), None, trigger="1 second", ctx=ctx_with_lane(), should_stop=should_stop
    )
    assert len(recorder.front) == 2
    assert len(results) == len(recorder.gold) >= 1


def test_gold_phases_wait_for_a_running_front_tick(monkeypatch):
    # Front ticks of 0.4 s; gold cycles of three 0.05 s phases. With a 1 s interval the gate
    # (wait at most one interval) always outlasts a tick: no gold phase may start inside one.
    ticks: list[tuple[float, float]] = []
    phase_starts: list[float] = []

    def run_cycle(spark, env, ctx, *, on_phase, **kwargs):
        n = len(phase_starts) // 3 + 1
        for phase in ("identity", "profile", "membership"):
            phase_starts.append(time.monotonic())
            time.sleep(0.05)
            on_phase(n, phase)
        return cycle.CycleResult(n, committed=True)

    def front_tick(spark, env, ctx, tick, moment, lock, run_id, memo=None):
        began = time.monotonic()
        time.sleep(0.4)
        ticks.append((began, time.monotonic()))
        return cycle.FrontTick(tick, 0, RealtimeRefresh())

    monkeypatch.setattr(cycle, "run_cycle", run_cycle)
    monkeypatch.setattr(cycle, "_front_tick", front_tick)
    cycle.run_stream_pipeline(FakeSpark(), None, trigger="1 second", max_cycles=3, ctx=ctx_with_lane())
    assert len(phase_starts) == 9 and ticks
    inside = [p for p in phase_starts if any(a + 0.01 < p < b - 0.01 for a, b in ticks)]
    assert inside == []


def test_front_batches_carry_the_id_of_the_gold_cycle_that_will_take_them(monkeypatch):
    # Cycle 7 is the last committed one. Gold cycle k returns once front tick 2k has begun:
    # ticks 1-2 run before cycle 8 commits; cycle 9 is first skipped (nothing new: the id is
    # kept), then committed after tick 6, so ticks 3-6 carry 9 and tick 7 carries 10.
    monkeypatch.setattr(cycle, "last_progress", lambda spark, env: cycle.CycleProgress(cycle_id=7))
    run_ids: list[str] = []
    plan = [(8, True), (9, False), (9, True)]
    calls: list[int] = []

    def run_cycle(spark, env, ctx, **kwargs):
        calls.append(1)
        deadline = time.monotonic() + 20
        while len(run_ids) < 2 * len(calls) and time.monotonic() < deadline:
            time.sleep(0.02)
        n, committed = plan[len(calls) - 1]
        return cycle.CycleResult(n, committed=committed)

    def front_tick(spark, env, ctx, tick, moment, lock, run_id, memo=None):
        run_ids.append(run_id)
        return cycle.FrontTick(tick, 0, RealtimeRefresh())

    monkeypatch.setattr(cycle, "run_cycle", run_cycle)
    monkeypatch.setattr(cycle, "_front_tick", front_tick)
    cycle.run_stream_pipeline(FakeSpark(), None, trigger="1 second", max_cycles=3, ctx=ctx_with_lane())
    assert run_ids[:6] == ["stream_c000008"] * 2 + ["stream_c000009"] * 4
    assert run_ids[6:] in ([], ["stream_c000010"])
