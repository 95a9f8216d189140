"""Real-time signals: product views per visitor in sliding event-time windows, with a watermark.

A Structured Streaming aggregation over silver/events (a Delta source: silver events are
written by insert-only MERGEs, so every commit is an append). Rows are keyed by the visitor
identifier the event carries (``user_id``, else ``anonymous_id``) rather than by customer id,
because customer ids change when identity merges people; the profile maps identifiers to
customers when it reads the table (:mod:`cdplake.features.realtime`).

Each micro-batch holds, in update mode, the new totals of the windows it touched; they are
upserted into gold/realtime_signals by key, so a batch replayed after a crash writes the
same values again. The watermark bounds the state: a window is dropped from state once the
watermark passes its end, and events later than that are not counted (Spark reports them
as dropped in the query progress, ``numRowsDroppedByWatermark``).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdplake.config.streaming import AVAILABLE_NOW, SignalSettings
from cdplake.features.profile import PRODUCT_VIEWED
from cdplake.features.realtime import SIGNALS_DDL
from cdplake.io.delta import read_stream, run_stream, table_exists
from cdplake.segments.membership import ensure_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdplake.config import EnvConfig

SIGNAL_KEYS = ("id_type", "id_value", "window_start")
SIGNALS_SOURCE = "events"  # the landing source whose silver table the signals are computed from
# Events that carry neither id still count, under one visible key instead of vanishing.
NO_VISITOR = ("none", "")


def visitor_id_type() -> Column:
    """``user_id`` when the event has one, else ``anonymous_id`` (the identity namespaces)."""
    user = F.trim(F.col("user_id"))
    anon = F.trim(F.col("anonymous_id"))
    return (
        F.when(F.length(user) > 0, F.lit("user_id"))
        .when(F.length(anon) > 0, F.lit("anonymous_id"))
        .otherwise(F.lit(NO_VISITOR[0]))
    )


def visitor_id_value() -> Column:
    """The value matching :func:`visitor_id_type`."""
    user = F.trim(F.col("user_id"))
    anon = F.trim(F.col("anonymous_id"))
    return F.when(F.length(user) > 0, user).when(F.length(anon) > 0, anon).otherwise(F.lit(NO_VISITOR[1]))


def product_view_windows(events: DataFrame, settings: SignalSettings) -> DataFrame:
    """Product views per visitor and sliding window; works on a batch or a streaming frame.

    Args:
        events: silver/events rows (``event``, ``event_ts``, ``user_id``, ``anonymous_id``).
        settings: window, slide and watermark.

    Returns:
        Rows shaped like :data:`cdplake.features.realtime.SIGNALS_DDL`.
    """
    views = events.where(F.col("event") == PRODUCT_VIEWED).withWatermark("event_ts", settings.watermark)
    window = F.window("event_ts", settings.window, settings.slide)
    return (
        views.groupBy(
            visitor_id_type().alias("id_type"), visitor_id_value().alias("id_value"), window.alias("w")
        )
        .agg(F.count(F.lit(1)).alias("product_views"), F.max("event_ts").alias("last_view_at"))
        .select(
            "id_type",
            "id_value",
            F.col("w.start").alias("window_start"),
            F.col("w.end").alias("window_end"),
            "product_views",
            "last_view_at",
        )
    )


def upsert_signals(batch: DataFrame, path: str) -> None:
    """MERGE window totals into gold/realtime_signals; the newer total of a window replaces the old."""
    from delta.tables import DeltaTable

    spark = batch.sparkSession
    ensure_table(spark, path, SIGNALS_DDL)
    on = " AND ".join(f"t.{k} = s.{k}" for k in SIGNAL_KEYS)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(batch.alias("s"), on)
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )


def update_signals(
    spark: SparkSession, env: EnvConfig, settings: SignalSettings, trigger: str = AVAILABLE_NOW
) -> bool:
    """Bring gold/realtime_signals up to date with silver/events.

    Args:
        spark: the session.
        env: the environment (paths).
        settings: window, slide and watermark (``conf/streaming.yaml``).
        trigger: ``availableNow`` (the cycle loop's mode) or a processing-time interval, in
            which case the query keeps running (see :func:`cdplake.io.delta.run_stream`).

    Returns:
        False when there is no silver/events table yet (nothing to do), else True.
    """
    events_path = env.paths.table("silver", SIGNALS_SOURCE)
    if not table_exists(spark, events_path):
        return False
    target = env.paths.table("gold", "realtime_signals")
    ensure_table(spark, target, SIGNALS_DDL)
    stream = product_view_windows(read_stream(spark, events_path), settings)
    run_stream(
        stream,
        checkpoint=env.paths.checkpoint("gold_realtime_signals"),
        foreach_batch=lambda batch, _batch_id: upsert_signals(batch, target),
        trigger=trigger,
        query_name="gold_realtime_signals",
        output_mode="update",
    )
    return True
