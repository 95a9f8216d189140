"""One micro-batch cycle of the streaming pipeline, and the loop that repeats it.

A cycle: new landing files -> bronze -> silver (both Structured Streaming queries with an
``availableNow`` trigger and their own checkpoints) -> real-time signals (a windowed stream
over silver/events) -> identity (incremental: only the records that changed and what they can
link to are resolved again and MERGEd, see :mod:`cdplake.identity.incremental`) -> gold for the touched customers only
(:mod:`cdplake.streaming.incremental`; the history of their golden attributes too) -> one
row in the progress table (:mod:`cdplake.streaming.progress`). The loop runs cycles once
(``availableNow``, for a scheduler) or every interval (``"10 seconds"``, like Spark's
processing-time trigger: a cycle that overruns is followed at once by the next).

Exactly-once: every step is idempotent given its input, and a cycle's input is recorded
only when its last gold write has committed, so a process killed anywhere redoes the
unfinished cycle on restart with the same cycle id, the same ``run_id`` and (with a fixed
``as_of``) the same values.
"""

from __future__ import annotations

import datetime as dt
import threading
import time
from collections.abc import Callable, Collection
from contextlib import AbstractContextManager, nullcontext
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from cdplake.bronze.sources import SOURCES as BRONZE_SOURCES
from cdplake.config.features import FeaturesConfig, load_features_config
from cdplake.config.identity import IdentityConfig, load_identity_config
from cdplake.config.segments import SegmentsConfig, load_segments_config
from cdplake.config.streaming import AVAILABLE_NOW, StreamingConfig, check_trigger, interval_seconds
from cdplake.features.columns import as_utc, ts_lit
from cdplake.features.profile import ATTRIBUTES
from cdplake.identity.extract import SOURCES
from cdplake.io.delta import read_table, table_exists, table_version
from cdplake.segments.evaluate import MEMBER_COLUMNS
from cdplake.segments.membership import merge_membership
from cdplake.segments.profile_history import HISTORY_TABLE, merge_profile_history
from cdplake.streaming import incremental as inc
from cdplake.streaming.priority import FrontPriority, SharedLock
from cdplake.streaming.progress import CycleProgress, commit_progress, cycle_run_id, last_progress
from cdplake.streaming.realtime_lane import (
    RealtimeRefresh,
    RefreshMemo,
    refresh_realtime_segments,
    split_segments,
)
from cdplake.streaming.signals import SIGNALS_SOURCE, update_signals

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cdplake.config import EnvConfig

PHASES = ("bronze", "silver", "signals", "identity", "profile", "history", "membership", "summary", "commit")
# The gold lane of a two-lane loop also has "checks" (the silver suites) before "identity".
PhaseHook = Callable[[int, str], None]
SCHEDULER_POOL = "spark.scheduler.pool"  # a thread's fair-scheduler pool (a local property)
Clock = Callable[[], dt.datetime]
# Two lanes: the front lane takes the files the real-time signals come from, every trigger;
# the gold lane takes the other sources' files at the start of each of its cycles.
FRONT_SOURCES = (SIGNALS_SOURCE,)
GOLD_LANE_SOURCES = tuple(name for name in BRONZE_SOURCES if name not in FRONT_SOURCES)


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)


@dataclass(frozen=True)
class CycleResult:
    """What one cycle did.

    Attributes:
        cycle_id: the cycle's number (also in its ``run_id``).
        committed: False when there was nothing to do (no progress row written).
        new_files: landing files ingested into bronze this cycle.
        touched: customers recomputed; ``removed``: customer ids deleted (merged away).
        full_rebuild: every customer was recomputed.
        seconds: wall time per phase.
        segment_sizes: open stays per segment after the cycle.
    """

    cycle_id: int
    committed: bool
    new_files: int = 0
    touched: int = 0
    removed: int = 0
    full_rebuild: bool = False
    seconds: dict[str, float] = field(default_factory=dict)
    segment_sizes: dict[str, int] = field(default_factory=dict)

    def render(self) -> str:
        """One line for logs."""
        timing = " ".join(f"{k}={v:.1f}s" for k, v in self.seconds.items())
        if not self.committed:
            return f"cycle {self.cycle_id}: nothing new ({self.new_files} files; {timing})"
        kind = "full" if self.full_rebuild else "incremental"
        return (
            f"cycle {self.cycle_id}: {self.new_files} files, {kind}, {self.touched} customers recomputed, "
            f"{self.removed} removed; sizes {self.segment_sizes}; {timing}"
        )


@dataclass(frozen=True)
class CycleContext:
    """Configuration a cycle needs besides the environment (loaded once per run)."""

    streaming: StreamingConfig
    segments: SegmentsConfig
    identity: IdentityConfig
    features: FeaturesConfig

    @classmethod
    def load(cls, env: EnvConfig) -> CycleContext:
        from cdplake.config.streaming import load_streaming_config

        return cls(
            streaming=load_streaming_config(env.conf_dir),
            segments=load_segments_config(env.conf_dir),
            identity=load_identity_config(env.conf_dir),
            features=load_features_config(env.conf_dir),
        )


def run_front(
    spark: SparkSession,
    env: EnvConfig,
    ctx: CycleContext,
    run_id: str,
    *,
    dataset_checks: bool,
    done: Callable[[str], None] | None = None,
    sources: Collection[str] | None = None,
) -> int:
    """Landing -> bronze -> silver -> real-time signals: the part of a cycle that takes new files.

    Args:
        done: called with ``bronze``, ``silver`` and ``signals`` as each phase ends.
        sources: only these landing sources (bronze source names); all when None. The
            signals are updated only when :data:`SIGNALS_SOURCE` is among them.

    Returns:
        Landing files ingested into bronze.
    """
    from cdplake.bronze import ingest_all
    from cdplake.silver import build_silver

    ingested = ingest_all(spark, env, run_id, sources=sources)
    if done:
        done("bronze")
    build_silver(spark, env, run_id, dataset_checks=dataset_checks, sources=sources)
    if done:
        done("silver")
    if sources is None or SIGNALS_SOURCE in sources:
        update_signals(spark, env, ctx.streaming.signals)
        if done:
            done("signals")
    return sum(r.files for r in ingested.values())


def run_cycle(
    spark: SparkSession,
    env: EnvConfig,
    ctx: CycleContext,
    *,
    as_of: dt.datetime | None = None,
    clock: Clock = _utc_now,
    on_phase: PhaseHook | None = None,
    front_sources: Collection[str] | None = None,
    leave_segments: frozenset[str] = frozenset(),
    membership_lock: AbstractContextManager[Any] | None = None,
) -> CycleResult:
    """Run one cycle over whatever landed since the last one (see the module docstring).

    Args:
        spark: the session.
        env: the environment.
        ctx: streaming, segment and identity settings.
        as_of: evaluation time of the gold step; ``clock()`` at the cycle's start when None.
        clock: the wall clock (tests fix it).
        on_phase: called with ``(cycle_id, phase)`` after each phase of :data:`PHASES`.
        front_sources: the landing sources whose new files the cycle takes first
            (:func:`run_front`); all when None. In the gold lane of a two-lane loop, every
            source but :data:`SIGNALS_SOURCE`, whose files the front lane takes
            (:mod:`cdplake.streaming.realtime_lane`); the silver suites then run over whole
            tables in a "checks" phase.
        leave_segments: segments whose stays this cycle neither opens nor closes (the
            real-time lane keeps them).
        membership_lock: held while gold/segment_membership is written.
    """
    from cdplake.identity import resolve_identities

    previous = last_progress(spark, env)
    cycle_id = (previous.cycle_id if previous else 0) + 1
    run_id = cycle_run_id(cycle_id)
    as_of = as_utc(as_of or clock())
    seconds: dict[str, float] = {}
    mark = [time.perf_counter()]

    def done(phase: str) -> None:
        seconds[phase] = time.perf_counter() - mark[0]
        if on_phase:
            on_phase(cycle_id, phase)
        mark[0] = time.perf_counter()  # time spent in the hook (a pause) is no phase's

    new_files = 0
    checks = ctx.streaming.dataset_checks_in(cycle_id)
    shared = front_sources is not None  # another lane takes some sources' files
    if front_sources is None or front_sources:
        new_files = run_front(
            spark, env, ctx, run_id, dataset_checks=checks and not shared, done=done, sources=front_sources
        )
    signals_path = env.paths.table("gold", "realtime_signals")

    versions = inc.silver_versions(spark, env)
    rc_path = env.paths.table("identity", "record_customer")
    skipped = CycleResult(cycle_id, committed=False, new_files=new_files, seconds=seconds)
    if all(v < 0 for v in versions.values()):
        return skipped  # nothing has landed yet
    silver_changed = previous is None or versions != previous.silver_versions
    if shared and checks and silver_changed:
        # The front lane leaves the whole-table suites to this lane, off the path of new files.
        from cdplake.silver.build import check_silver_tables

        check_silver_tables(spark, env, run_id)
        done("checks")
    if silver_changed or not table_exists(spark, rc_path):
        resolve_identities(spark, env, run_id, config=ctx.identity, incremental=True)
    done("identity")

    identity_version = table_version(spark, rc_path)
    record_customer = read_table(spark, rc_path)
    customer_map = read_table(spark, env.paths.table("identity", "customer_map"))
    signals = read_table(spark, signals_path) if table_exists(spark, signals_path) else None
    slide = ctx.streaming.signals.slide_seconds
    silver = {
        name: read_table(spark, env.paths.table("silver", name))
        for name in SOURCES
        if table_exists(spark, env.paths.table("silver", name))
    }
    profile_path = env.paths.table("gold", "customer_profile")
    rules = ctx.identity.never_link

    def profiles_for(customers: DataFrame | None) -> DataFrame:
        computed = inc.compute_profiles(
            silver,
            record_customer,
            customer_map,
            customers,
            as_of,
            rules,
            signals,
            slide,
            features=ctx.features,
            consent_rules=ctx.segments.consent,
        )
        return computed.select("*", ts_lit(as_of).alias("as_of"), F.lit(run_id).alias("run_id"))

    full = previous is None or inc.profile_needs_rebuild(spark, profile_path, profiles_for(None).columns)
    membership_path = env.paths.table("gold", "segment_membership")
    history_path = env.paths.table("gold", HISTORY_TABLE)
    gold_segments = replace(
        ctx.segments, segments=tuple(d for d in ctx.segments.segments if d.id not in leave_segments)
    )
    segment_ids = [d.id for d in gold_segments.segments]
    writing_membership = membership_lock or nullcontext()
    if full:
        profiles_for(None).write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(
            profile_path
        )
        touched, removed = read_table(spark, profile_path).count(), 0
        done("profile")
        written = read_table(spark, profile_path).select("customer_id", *ATTRIBUTES)
        merge_profile_history(spark, history_path, written, as_of, run_id)
        done("history")
        allowed, _ = inc.members_of(read_table(spark, profile_path), gold_segments)
        allowed = allowed.select(*MEMBER_COLUMNS).localCheckpoint(eager=True)
        with writing_membership:
            merge_membership(spark, membership_path, allowed, segment_ids, run_id, as_of)
        done("membership")
    else:
        assert previous is not None
        identity_moved = identity_version != previous.identity_version
        moments = [as_of] + ([previous.as_of] if previous.as_of else [])
        active = inc.realtime_active(signals, customer_map, moments, slide)
        if not (silver_changed or identity_moved) and (as_of == as_utc(previous.as_of) or active.isEmpty()):
            return skipped
        ranks = inc.ranks_moved_since(
            spark, env, previous, versions, record_customer, identity_version, as_of, ctx.features.rfm
        )
        found = inc.touched_customers(spark, env, previous, versions, record_customer, active, ranks)
        # Pinned: the sets must not be re-derived from tables this cycle is about to change.
        recompute = found.recompute.localCheckpoint(eager=True)
        removed_ids = found.removed.localCheckpoint(eager=True)
        profiles = profiles_for(recompute).localCheckpoint(eager=True)
        touched, removed = profiles.count(), removed_ids.count()
        inc.merge_profiles(spark, profile_path, profiles, removed_ids)
        done("profile")
        scope = recompute.unionByName(removed_ids)
        # Only the touched customers' versions are read and written; removed ids are closed.
        changed = profiles.select("customer_id", *ATTRIBUTES)
        merge_profile_history(spark, history_path, changed, as_of, run_id, scope=scope)
        done("history")
        allowed, _ = inc.members_of(profiles, gold_segments)
        with writing_membership:
            inc.merge_membership_scoped(spark, membership_path, allowed, scope, segment_ids, run_id, as_of)
        done("membership")

    sizes = inc.write_summary(spark, env, ctx.segments, run_id, as_of)
    done("summary")
    commit_progress(
        spark,
        env,
        CycleProgress(
            cycle_id=cycle_id,
            silver_versions=versions,
            identity_version=identity_version,
            as_of=as_of,
            touched_customers=touched,
            removed_customers=removed,
            full_rebuild=full,
        ),
    )
    done("commit")
    return CycleResult(
        cycle_id,
        committed=True,
        new_files=new_files,
        touched=touched,
        removed=removed,
        full_rebuild=full,
        seconds=seconds,
        segment_sizes=sizes,
    )


@dataclass(frozen=True)
class FrontTick:
    """One tick of the front lane of a two-lane loop (see :func:`run_stream_pipeline`)."""

    tick: int
    new_files: int
    refresh: RealtimeRefresh
    seconds: dict[str, float] = field(default_factory=dict)

    def render(self) -> str:
        """One line for logs."""
        timing = " ".join(f"{k}={v:.1f}s" for k, v in self.seconds.items())
        r = self.refresh
        if r.skipped:
            return (
                f"front {self.tick}: {self.new_files} files; real-time segments: inputs unchanged; {timing}"
            )
        return (
            f"front {self.tick}: {self.new_files} files; real-time segments: {r.scope} customers, "
            f"{r.opened} entered, {r.closed} exited; {timing}"
        )


def run_stream_pipeline(
    spark: SparkSession,
    env: EnvConfig,
    *,
    trigger: str | None = None,
    as_of: dt.datetime | None = None,
    max_cycles: int | None = None,
    ctx: CycleContext | None = None,
    clock: Clock = _utc_now,
    on_phase: PhaseHook | None = None,
    on_cycle: Callable[[CycleResult], None] | None = None,
    should_stop: Callable[[], bool] | None = None,
    on_front: Callable[[FrontTick], None] | None = None,
) -> list[CycleResult]:
    """Run cycles: once for ``availableNow``, else every ``trigger`` interval until stopped.

    With a processing-time trigger, ``realtime_lane: true`` in ``conf/streaming.yaml`` and
    at least one real-time segment, the loop runs in two lanes (see
    :mod:`cdplake.streaming.realtime_lane`): this thread takes new files every trigger and
    refreshes the real-time segments; a second thread runs the gold part of the cycles
    back to back (at most one per trigger interval). Both stop between their steps.

    Args:
        spark: the session.
        env: the environment.
        trigger: ``availableNow`` or ``"10 seconds"``-style; ``conf/streaming.yaml`` by default.
        as_of: a fixed evaluation time for every cycle (backfills, tests); the clock when None.
        max_cycles: stop after this many cycles (processing-time mode; None: run forever).
        ctx: settings; loaded from ``env.conf_dir`` by default.
        clock: the wall clock.
        on_phase: called after every phase (see :func:`run_cycle`).
        on_cycle: called with each cycle's result.
        should_stop: polled between cycles (e.g. set by a SIGTERM handler).
        on_front: called with each front tick of a two-lane loop.

    Returns:
        Every cycle's result, in order.
    """
    ctx = ctx or CycleContext.load(env)
    trigger = check_trigger(trigger or ctx.streaming.trigger)
    interval = None if trigger == AVAILABLE_NOW else interval_seconds(trigger)
    realtime, _ = split_segments(ctx.segments)
    if interval is not None and ctx.streaming.realtime_lane and realtime.segments:
        return _two_lanes(
            spark, env, ctx, interval, as_of, max_cycles, clock, on_phase, on_cycle, should_stop, on_front
        )
    results: list[CycleResult] = []
    while True:
        started = time.monotonic()
        result = run_cycle(spark, env, ctx, as_of=as_of, clock=clock, on_phase=on_phase)
        results.append(result)
        if on_cycle:
            on_cycle(result)
        if interval is None or (max_cycles is not None and len(results) >= max_cycles):
            return results
        while time.monotonic() - started < interval:
            if should_stop and should_stop():
                return results
            time.sleep(min(0.2, interval - (time.monotonic() - started)))
        if should_stop and should_stop():
            return results


def _front_tick(
    spark: SparkSession,
    env: EnvConfig,
    ctx: CycleContext,
    tick: int,
    moment: dt.datetime,
    lock: AbstractContextManager[Any],
    run_id: str,
    memo: RefreshMemo | None = None,
) -> FrontTick:
    """New files through silver and signals, then the real-time segments at ``moment``.

    ``run_id`` stamps the bronze and silver batches: that of the gold cycle that will take them.
    """
    seconds: dict[str, float] = {}
    mark = [time.perf_counter()]

    def done(phase: str) -> None:
        now = time.perf_counter()
        seconds[phase] = now - mark[0]
        mark[0] = now

    # The silver suites are the gold lane's (run_cycle's "checks" phase): whole-table scans.
    files = run_front(spark, env, ctx, run_id, dataset_checks=False, done=done, sources=FRONT_SOURCES)
    refresh = refresh_realtime_segments(
        spark,
        env,
        ctx.segments,
        ctx.streaming.signals,
        moment,
        f"stream_rt_{moment:%Y%m%dT%H%M%S}",
        membership_lock=lock,
        memo=memo,
    )
    done("realtime")
    return FrontTick(tick, files, refresh, seconds)


def _two_lanes(
    spark: SparkSession,
    env: EnvConfig,
    ctx: CycleContext,
    interval: int,
    as_of: dt.datetime | None,
    max_cycles: int | None,
    clock: Clock,
    on_phase: PhaseHook | None,
    on_cycle: Callable[[CycleResult], None] | None,
    should_stop: Callable[[], bool] | None,
    on_front: Callable[[FrontTick], None] | None,
) -> list[CycleResult]:
    realtime, _ = split_segments(ctx.segments)
    leave = frozenset(d.id for d in realtime.segments)
    # The front lane first: the gold lane's thread waits at its JVM calls while a front tick
    # runs, within a budget that leaves gold at least its share of the time, less one
    # interval (cdplake.streaming.priority).
    priority = FrontPriority(gold_share=ctx.streaming.gold_share, burst=interval)
    lock = SharedLock(priority)
    memo = RefreshMemo()  # lets a front tick skip a refresh whose inputs have not changed
    stop = threading.Event()
    results: list[CycleResult] = []
    failures: list[BaseException] = []

    def pause(started: float) -> None:
        # Until one interval after ``started``, or until asked to stop.
        while not stop.is_set() and time.monotonic() - started < interval:
            if should_stop and should_stop():
                stop.set()
            stop.wait(min(0.2, max(0.0, interval - (time.monotonic() - started))))

    def gold_phase(cycle_id: int, phase: str) -> None:
        if on_phase:
            on_phase(cycle_id, phase)
        priority.wait_turn()

    def gold_lane() -> None:
        # Its own fair-scheduler pool: its stages and the front's share the cores.
        spark.sparkContext.setLocalProperty(SCHEDULER_POOL, "gold")
        try:
            with priority.gated():
                gold_cycles()
        except BaseException as exc:  # re-raised by the calling thread
            failures.append(exc)
            stop.set()

    def gold_cycles() -> None:
        while not stop.is_set():
            priority.wait_turn()
            started = time.monotonic()
            result = run_cycle(
                spark,
                env,
                ctx,
                as_of=as_of,
                clock=clock,
                on_phase=gold_phase,
                front_sources=GOLD_LANE_SOURCES,
                leave_segments=leave,
                membership_lock=lock,
            )
            results.append(result)
            if result.committed:
                next_cycle[0] = result.cycle_id + 1
            if on_cycle:
                on_cycle(result)
            if max_cycles is not None and len(results) >= max_cycles:
                stop.set()
            pause(started)

    # Bronze and silver batches are stamped with the id of the gold cycle that will take
    # them: read once here, then kept by the gold lane (no progress-table read per tick).
    previous = last_progress(spark, env)
    next_cycle = [(previous.cycle_id if previous else 0) + 1]
    lane = threading.Thread(target=gold_lane, name="cdplake-gold-lane", daemon=True)
    lane.start()
    tick = 0
    spark.sparkContext.setLocalProperty(SCHEDULER_POOL, "front")
    try:
        while not stop.is_set():
            started = time.monotonic()
            tick += 1
            with priority.front():
                moment = as_utc(as_of or clock())
                run_id = cycle_run_id(next_cycle[0])
                front = _front_tick(spark, env, ctx, tick, moment, lock, run_id, memo=memo)
            if on_front:
                on_front(front)
            pause(started)
    finally:
        stop.set()
        lane.join()
        spark.sparkContext.setLocalProperty(SCHEDULER_POOL, None)
    if failures:
        raise failures[0]
    return results
