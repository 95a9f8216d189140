"""The real-time lane: segments on windowed signals, refreshed without waiting for gold.

A cycle of the stream (:mod:`cdplake.streaming.cycle`) spends most of its time on identity
and on recomputing profiles; a segment such as ``browsing_now`` (views in the last hour)
would wait for all of it. With a processing-time trigger the loop therefore runs two lanes in
one driver:

* the **front** (every trigger): events landing -> bronze -> silver ->
  ``gold/realtime_signals``, then :func:`refresh_realtime_segments`;
* the **gold lane** (back to back, in a second thread): the other sources' landing ->
  bronze -> silver, the silver suites, identity -> profiles -> history -> membership of
  every other segment -> summary -> progress. It waits at its JVM calls while a front tick
  runs (:mod:`cdplake.streaming.priority`).

:func:`refresh_realtime_segments` evaluates only the *real-time segments* (whose condition
or features use a column of :data:`cdplake.features.realtime.REALTIME_FEATURES`) for the
customers that can be in them now: those with views in the current window and those with an
open stay. It takes each one's stored profile row, replaces the real-time columns by their
values at the lane's ``as_of`` (signals joined to ``identity/customer_map``), applies the
segment conditions and consent exactly as gold does, and MERGEs the stays of those segments
only. The gold lane then leaves those segments alone, so the two never undo each other.

What it cannot know: a visitor identifier that identity has not linked to a customer yet
(e.g. a first login), and a customer with no profile row yet. Both reach the segment
through the gold lane's next cycle. Real-time segments are also time-driven: a stay closes
once the window no longer holds the views, at the next refresh.
"""

from __future__ import annotations

import datetime as dt
import re
import threading
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

from pyspark.sql import functions as F

from cdplake.features.realtime import (
    REALTIME_FEATURES,
    current_window_end,
    realtime_features,
    with_realtime_values,
)
from cdplake.io.delta import read_table, table_version
from cdplake.streaming import incremental as inc

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdplake.config import EnvConfig
    from cdplake.config.segments import SegmentDefinition, SegmentsConfig
    from cdplake.config.streaming import SignalSettings

REALTIME_COLUMNS = tuple(name for name, _ in REALTIME_FEATURES)


def is_realtime(definition: SegmentDefinition) -> bool:
    """Whether a segment's condition or features use a real-time profile column."""
    used = set(definition.features)
    used.update(c for c in REALTIME_COLUMNS if re.search(rf"\b{re.escape(c)}\b", definition.condition))
    return bool(used & set(REALTIME_COLUMNS))


def split_segments(segments: SegmentsConfig) -> tuple[SegmentsConfig, SegmentsConfig]:
    """``(realtime, other)``: the same purposes and consent rules, the segments split by :func:`is_realtime`."""
    realtime = tuple(d for d in segments.segments if is_realtime(d))
    other = tuple(d for d in segments.segments if not is_realtime(d))
    return replace(segments, segments=realtime), replace(segments, segments=other)


@dataclass(frozen=True)
class RealtimeRefresh:
    """What one refresh did: customers looked at, stays opened and closed."""

    scope: int = 0
    opened: int = 0
    closed: int = 0
    skipped: bool = False  # nothing it reads had changed since the last refresh


class RefreshMemo:
    """What the last refresh read, so the next one can skip when none of it has changed.

    The inputs are the versions of the tables the refresh reads (profile, identity map,
    signals, membership) and the current window's end; the membership version is taken after
    the refresh's own write. Same inputs, same stays: a refresh would find nothing to do.
    A segment condition that reads the clock itself (``current_timestamp()``) is therefore
    re-evaluated when the window slides, not every trigger.
    """

    def __init__(self) -> None:
        self.inputs: tuple | None = None
        self.scope = 0


def refresh_realtime_segments(
    spark: SparkSession,
    env: EnvConfig,
    segments: SegmentsConfig,
    signals: SignalSettings,
    as_of: dt.datetime,
    run_id: str,
    membership_lock: AbstractContextManager[Any] | None = None,
    memo: RefreshMemo | None = None,
) -> RealtimeRefresh:
    """Bring the stays of the real-time segments up to date at ``as_of`` (see the module docstring).

    Args:
        spark: the session.
        env: the environment (paths).
        segments: every segment; only the real-time ones are evaluated.
        signals: the signal window settings (its slide picks the current window).
        as_of: the evaluation time: ``entered_at``/``exited_at`` of the stays it changes.
        run_id: stamped on the stays it opens or closes.
        membership_lock: held while gold/segment_membership is written (the gold lane
            writes it too, from another thread).
        memo: kept between calls by a caller that refreshes repeatedly (the front lane);
            a refresh whose inputs are those of the last one returns at once, ``skipped``.

    Returns:
        Customers evaluated and stays opened and closed; all 0 when there is nothing to do
        (no real-time segment, no profile, identity or signals table yet).
    """
    realtime, _ = split_segments(segments)
    if not realtime.segments:
        return RealtimeRefresh()
    profile_path = env.paths.table("gold", "customer_profile")
    map_path = env.paths.table("identity", "customer_map")
    signals_path = env.paths.table("gold", "realtime_signals")
    membership_path = env.paths.table("gold", "segment_membership")
    # The versions say both whether each table exists (-1: not yet) and what the memo keys on.
    versions = tuple(table_version(spark, p) for p in (profile_path, map_path, signals_path, membership_path))
    if min(versions[:3]) < 0:
        return RealtimeRefresh()  # no profile, identity or signals table yet
    window_end = current_window_end(as_of, signals.slide_seconds)
    inputs = (*versions, window_end)
    if memo is not None and memo.inputs == inputs:
        return RealtimeRefresh(memo.scope, skipped=True)
    ids = [d.id for d in realtime.segments]
    # Each table is read once and what is small is pinned: the views of the current window
    # per customer, and the open stays of the real-time segments (the MERGE below rewrites
    # the table they come from; the gold lane never writes these segments' stays).
    views_now = realtime_features(
        read_table(spark, signals_path), read_table(spark, map_path), as_of, signals.slide_seconds
    ).localCheckpoint(eager=True)
    customers = views_now.select("customer_id")
    open_stays = None
    if versions[3] >= 0:
        open_stays = (
            read_table(spark, membership_path)
            .where(F.col("is_member") & F.col("segment_id").isin(ids))
            .localCheckpoint(eager=True)
        )
        customers = customers.unionByName(open_stays.select("customer_id"))
    scope = customers.distinct()
    size = scope.count()
    if size == 0:
        if memo is not None:
            memo.inputs, memo.scope = inputs, 0
        return RealtimeRefresh()
    stored = read_table(spark, profile_path).join(F.broadcast(scope), "customer_id", "left_semi")
    fresh = with_realtime_values(stored.drop(*REALTIME_COLUMNS), views_now).select(*stored.columns)
    allowed, _ = inc.members_of(fresh, realtime)
    with membership_lock or threading.Lock():
        opened, closed = inc.merge_membership_scoped(
            spark, membership_path, allowed, scope, ids, run_id, as_of, open_stays=open_stays
        )
        if memo is not None:
            # The other tables as they were before this refresh read them (a newer gold write
            # shows as a new version next time); membership after its own write, under the lock.
            memo.inputs = (*versions[:3], table_version(spark, membership_path), window_end)
            memo.scope = size
    return RealtimeRefresh(size, opened, closed)
