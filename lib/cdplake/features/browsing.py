"""Browsing: sessions from inactivity gaps, cart abandonment, category affinity.

Sessions are per customer, not per device: two devices used in the same half hour make
one session. That is what "how often does this person come back" needs.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cdplake.config.features import BrowsingSettings
from cdplake.features.columns import ts_lit, within_days

PRODUCT_VIEWED = "Product Viewed"
PRODUCT_ADDED = "Product Added"
ORDER_COMPLETED = "Order Completed"


def _micros(ts: Column) -> Column:
    return F.unix_micros(ts)


def sessionize(events: DataFrame, gap_minutes: int) -> DataFrame:
    """Number each customer's events into sessions: a gap over ``gap_minutes`` starts a new one.

    Args:
        events: silver events with ``customer_id`` and ``event_ts`` (undated rows are left out:
            they cannot be placed in a session).
        gap_minutes: inactivity that ends a session (30 is the web-analytics convention).

    Returns:
        The rows with ``session_index`` (1, 2, ... per customer, in time order). A gap of
        exactly ``gap_minutes`` stays in the same session.
    """
    tie = F.col("message_id") if "message_id" in events.columns else F.lit(None)
    by_time = Window.partitionBy("customer_id").orderBy(F.col("event_ts"), tie)
    gap = _micros(F.col("event_ts")) - _micros(F.lag("event_ts").over(by_time))
    starts = F.when(gap.isNull() | (gap > gap_minutes * 60 * 1_000_000), 1).otherwise(0)
    dated = events.where(F.col("event_ts").isNotNull()).withColumn("_start", starts)
    running = by_time.rowsBetween(Window.unboundedPreceding, Window.currentRow)
    return dated.withColumn("session_index", F.sum("_start").over(running)).drop("_start")


def sessions(
    events: DataFrame, order_times: DataFrame, as_of: dt.datetime, settings: BrowsingSettings
) -> DataFrame:
    """One row per browsing session, with whether its cart was abandoned.

    A session's cart is abandoned when it added to cart, no order (any channel) was placed
    from its first cart add until ``cart_abandonment_hours`` after its last one, and that
    time has passed by ``as_of`` (a cart added an hour ago is not abandoned yet).

    Args:
        events: silver events with ``customer_id``, at or before ``as_of``.
        order_times: ``customer_id, order_ts`` of orders at or before ``as_of``.
        as_of: evaluation time.
        settings: gap and abandonment window.

    Returns:
        ``customer_id, session_index, ts`` (session start), ``ended_at, events,
        product_views, cart_adds, duration_seconds, abandoned_cart`` (0/1).
    """
    is_view = F.col("event") == PRODUCT_VIEWED
    is_add = F.col("event") == PRODUCT_ADDED
    per_session = (
        sessionize(events, settings.session_gap_minutes)
        .groupBy("customer_id", "session_index")
        .agg(
            F.min("event_ts").alias("ts"),
            F.max("event_ts").alias("ended_at"),
            F.count("*").alias("events"),
            F.count_if(is_view).alias("product_views"),
            F.count_if(is_add).alias("cart_adds"),
            F.min(F.when(is_add, F.col("event_ts"))).alias("_first_add"),
            F.max(F.when(is_add, F.col("event_ts"))).alias("_last_add"),
        )
    )
    # Next order at or after the first cart add: orders and sessions in one time line per
    # customer, a forward-looking min over the order times.
    timeline = per_session.select(
        "customer_id",
        "session_index",
        F.col("_first_add").alias("_t"),
        F.lit(None).cast("timestamp").alias("_o"),
    ).unionByName(
        order_times.select(
            "customer_id",
            F.lit(None).cast("bigint").alias("session_index"),
            F.col("order_ts").alias("_t"),
            F.col("order_ts").alias("_o"),
        )
    )
    ahead = (
        Window.partitionBy("customer_id")
        .orderBy(_micros(F.col("_t")))
        .rangeBetween(Window.currentRow, Window.unboundedFollowing)
    )
    next_order = (
        timeline.withColumn("_next_order", F.min("_o").over(ahead))
        .where(F.col("session_index").isNotNull() & F.col("_t").isNotNull())
        .select("customer_id", "session_index", "_next_order")
    )
    deadline = F.col("_last_add") + F.make_interval(hours=F.lit(settings.cart_abandonment_hours))
    abandoned = (
        F.col("_last_add").isNotNull()
        & (deadline <= ts_lit(as_of))
        & (F.col("_next_order").isNull() | (F.col("_next_order") > deadline))
    )
    return per_session.join(next_order, ["customer_id", "session_index"], "left").select(
        "customer_id",
        "session_index",
        "ts",
        "ended_at",
        "events",
        "product_views",
        "cart_adds",
        ((_micros(F.col("ended_at")) - _micros(F.col("ts"))) / 1_000_000)
        .cast("bigint")
        .alias("duration_seconds"),
        F.when(abandoned, 1).otherwise(0).alias("abandoned_cart"),
    )


def order_times(orders: DataFrame | None, events: DataFrame | None) -> DataFrame | None:
    """``customer_id, order_ts`` of every order known: the orders feed and ``Order Completed`` events."""
    parts = []
    if orders is not None:
        parts.append(orders.select("customer_id", F.col("order_ts")))
    if events is not None:
        parts.append(
            events.where(F.col("event") == ORDER_COMPLETED).select(
                "customer_id", F.col("event_ts").alias("order_ts")
            )
        )
    if not parts:
        return None
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out.where(F.col("order_ts").isNotNull())


def top_categories(
    events: DataFrame | None, orders: DataFrame | None, as_of: dt.datetime, settings: BrowsingSettings
) -> DataFrame | None:
    """The customer's ``top_categories`` by weighted interactions in ``category_window_days``.

    A product view, a cart add and a purchased line (completed orders) of a category score
    their ``category_weights``. Highest score first; equal scores in category name order.

    Returns:
        ``customer_id, top_categories`` (ARRAY<STRING>, at most ``top_categories`` long), or
        ``None`` when neither input is given.
    """
    w = settings.category_weights
    parts = []
    if events is not None:
        ev = events.where(within_days(F.col("event_ts"), as_of, settings.category_window_days))
        weight = F.when(F.col("event") == PRODUCT_VIEWED, F.lit(w.get("view", 0.0))).when(
            F.col("event") == PRODUCT_ADDED, F.lit(w.get("cart_add", 0.0))
        )
        category = (
            F.col("product_category") if "product_category" in ev.columns else F.lit(None).cast("string")
        )
        parts.append(ev.select("customer_id", category.alias("category"), weight.alias("w")))
    # Purchases count only when line items are the silver contract's array of structs.
    if orders is not None and dict(orders.dtypes).get("line_items", "").startswith("array<struct"):
        od = orders.where(
            within_days(F.col("order_ts"), as_of, settings.category_window_days)
            & (F.col("status") == "completed")
        )
        items = od.select("customer_id", F.explode_outer("line_items").alias("item"))
        parts.append(
            items.select(
                "customer_id",
                F.col("item.category").alias("category"),
                (F.coalesce(F.col("item.quantity"), F.lit(1)) * F.lit(w.get("purchase", 0.0))).alias("w"),
            )
        )
    if not parts:
        return None
    scored = parts[0]
    for part in parts[1:]:
        scored = scored.unionByName(part)
    scored = (
        scored.where(F.col("category").isNotNull() & F.col("w").isNotNull() & (F.col("w") > 0))
        .groupBy("customer_id", "category")
        .agg(F.sum("w").cast("double").alias("score"))
    )
    rank = F.row_number().over(
        Window.partitionBy("customer_id").orderBy(F.col("score").desc(), F.col("category"))
    )
    ranked = scored.withColumn("_rank", rank).where(F.col("_rank") <= settings.top_categories)
    return ranked.groupBy("customer_id").agg(
        F.transform(
            F.array_sort(F.collect_list(F.struct("_rank", "category"))), lambda s: s["category"]
        ).alias("top_categories")
    )
