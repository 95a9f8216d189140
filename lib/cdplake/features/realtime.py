"""Real-time profile features read from gold/realtime_signals (the sliding-window stream).

The stream (:mod:`cdplake.streaming.signals`) keeps, per visitor identifier and sliding
window, how many products were viewed. The profile takes the window that contains ``as_of``
and ends soonest: with a 1-hour window sliding every 5 minutes that is the last 55-60
minutes up to ``as_of``, including views seconds old (a window that ended before ``as_of``
would miss those for up to one slide).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdplake.features.columns import as_utc, ts_lit

REALTIME_FEATURES: tuple[tuple[str, str], ...] = (("product_views_1h", "bigint"),)
SIGNALS_DDL = (
    "id_type STRING NOT NULL, id_value STRING NOT NULL, window_start TIMESTAMP NOT NULL, "
    "window_end TIMESTAMP NOT NULL, product_views BIGINT, last_view_at TIMESTAMP"
)


def current_window_end(as_of: dt.datetime, slide_seconds: int) -> dt.datetime:
    """End of the sliding window that contains ``as_of`` and ends soonest.

    Spark windows are ``[start, end)`` aligned to the epoch, so that is the first slide
    boundary strictly after ``as_of``: 12:07:30 with 5-minute slides -> 12:10:00, and
    12:10:00 itself -> 12:15:00.
    """
    moment = as_utc(as_of)
    epoch = int(moment.timestamp())
    return dt.datetime.fromtimestamp(epoch - epoch % slide_seconds + slide_seconds, dt.timezone.utc)


def realtime_features(
    signals: DataFrame, customer_map: DataFrame, as_of: dt.datetime, slide_seconds: int
) -> DataFrame:
    """``customer_id, product_views_1h``: views in the current window, summed over a customer's ids.

    Args:
        signals: gold/realtime_signals (:data:`SIGNALS_DDL`).
        customer_map: identity/customer_map (``id_type, id_value, customer_id``). Joining at
            read time, not when the stream ran, keeps the counts right when identity merges
            customers and their ids change.
        as_of: the evaluation time.
        slide_seconds: the window slide (``conf/streaming.yaml``).
    """
    end = current_window_end(as_of, slide_seconds)
    return (
        signals.where(F.col("window_end") == ts_lit(end))
        .join(customer_map.select("id_type", "id_value", "customer_id"), ["id_type", "id_value"])
        .groupBy("customer_id")
        .agg(F.sum("product_views").cast("bigint").alias("product_views_1h"))
    )


def with_realtime_features(
    profile: DataFrame,
    signals: DataFrame | None,
    customer_map: DataFrame | None,
    as_of: dt.datetime,
    slide_seconds: int,
) -> DataFrame:
    """``profile`` plus :data:`REALTIME_FEATURES` (0 without signals, or when the table is absent)."""
    if signals is None or customer_map is None:
        return profile.select("*", *[F.lit(0).cast(t).alias(n) for n, t in REALTIME_FEATURES])
    return with_realtime_values(profile, realtime_features(signals, customer_map, as_of, slide_seconds))


def with_realtime_values(profile: DataFrame, features: DataFrame) -> DataFrame:
    """``profile`` plus :data:`REALTIME_FEATURES` from ``features`` (:func:`realtime_features`'
    rows), 0 for a customer it has no row for."""
    joined = profile.join(features, "customer_id", "left")
    return joined.select(
        *profile.columns, *[F.coalesce(F.col(n), F.lit(0)).cast(t).alias(n) for n, t in REALTIME_FEATURES]
    )
