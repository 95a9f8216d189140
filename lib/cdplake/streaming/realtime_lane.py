"""The real-time lane: segments on windowed signals, refreshed without waiting for gold.

A cycle of the stream (:mod:`cdplake.streaming.cycle`) spends most of its time on identity
and on recomputing profiles; a segment such as ``browsing_now`` (views in the last hour)
would wait for all of it. With a processing-time trigger the loop therefore runs two lanes in
one driver:

* the **front** (every trigger): landing -> bronze -> silver -> ``gold/realtime_signals``,
  then :func:`refresh_realtime_segments`;
* the **gold lane** (back to back, in a second thread): identity -> profiles -> history ->
  membership of every other segment -> summary -> progress.

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
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING

from pyspark.sql import functions as F

from cdplake.features.realtime import REALTIME_FEATURES, with_realtime_features
from cdplake.io.delta import read_table, table_exists
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


def refresh_realtime_segments(
    spark: SparkSession,
    env: EnvConfig,
    segments: SegmentsConfig,
    signals: SignalSettings,
    as_of: dt.datetime,
    run_id: str,
    membership_lock: threading.Lock | None = None,
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

    Returns:
        Customers evaluated and stays opened and closed; all 0 when there is nothing to do
        (no real-time segment, no profile, identity or signals table yet).
    """
    realtime, _ = split_segments(segments)
    profile_path = env.paths.table("gold", "customer_profile")
    map_path = env.paths.table("identity", "customer_map")
    signals_path = env.paths.table("gold", "realtime_signals")
    membership_path = env.paths.table("gold", "segment_membership")
    needed = (profile_path, map_path, signals_path)
    if not realtime.segments or not all(table_exists(spark, p) for p in needed):
        return RealtimeRefresh()
    ids = [d.id for d in realtime.segments]
    customer_map = read_table(spark, map_path)
    views = read_table(spark, signals_path)
    active = inc.realtime_active(views, customer_map, [as_of], signals.slide_seconds)
    scope = active
    if table_exists(spark, membership_path):
        staying = read_table(spark, membership_path).where(F.col("is_member") & F.col("segment_id").isin(ids))
        scope = scope.unionByName(staying.select("customer_id"))
    # Pinned: the MERGE below rewrites the membership table this set was read from.
    scope = scope.distinct().localCheckpoint(eager=True)
    size = scope.count()
    if size == 0:
        return RealtimeRefresh()
    stored = read_table(spark, profile_path).join(scope, "customer_id", "left_semi")
    base = stored.drop(*REALTIME_COLUMNS)
    fresh = with_realtime_features(base, views, customer_map, as_of, signals.slide_seconds).select(
        *stored.columns
    )
    allowed, _ = inc.members_of(fresh, realtime)
    lock = membership_lock or threading.Lock()
    with lock:
        opened, closed = inc.merge_membership_scoped(
            spark, membership_path, allowed, scope, ids, run_id, as_of
        )
    return RealtimeRefresh(size, opened, closed)
