"""Per-customer features: golden contact attributes and activity aggregates.

Everything is relative to an injected ``as_of``; nothing here reads the clock. Activity
(events, orders, email engagement) counts only records at or before ``as_of`` so a backfill
for an earlier date sees what was known then; golden attributes observed on those records
follow the same rule. CRM rows are used whatever their date: CRM is a current-state
snapshot, so an as-of view of it cannot be rebuilt anyway. Which observed value becomes a
golden attribute is configured per attribute (:mod:`cdplake.features.survivorship`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdplake.config.features import GOLDEN_ATTRIBUTES, FeaturesConfig, GoldenSettings
from cdplake.features.browsing import order_times, top_categories
from cdplake.features.browsing import sessions as browsing_sessions
from cdplake.features.columns import at_or_before, days_between, within_days
from cdplake.features.engagement import email_messages, flag_email_events
from cdplake.features.rfm import CLV_COLUMNS, clv_columns, rfm_columns, rfm_features
from cdplake.features.survivorship import OBSERVED_AT, SOURCE, survive
from cdplake.features.traits import FeatureDefinitionError, aggregate_traits, fill_traits

ATTRIBUTES = GOLDEN_ATTRIBUTES

# Segment e-commerce spec event names.
PRODUCT_VIEWED = "Product Viewed"
PRODUCT_ADDED = "Product Added"
CHECKOUT_STARTED = "Checkout Started"
# SendGrid engagement events that show the person themselves was there.
EMAIL_ENGAGEMENT = ("open", "click")

# Output columns after customer_id, with types, in order. Counts of customers without any
# matching record are 0, not null; timestamps and revenue of customers without orders stay null
# (revenue 0 would claim a known zero).
FEATURE_SCHEMA: tuple[tuple[str, str], ...] = (
    *((a, "string") for a in ATTRIBUTES),
    ("first_seen_at", "timestamp"),
    ("last_seen_at", "timestamp"),
    ("order_count", "bigint"),
    ("revenue", "decimal(18,2)"),
    ("last_order_at", "timestamp"),
    ("days_since_last_order", "int"),
    ("product_views_30d", "bigint"),
    ("cart_adds_7d", "bigint"),
    ("last_cart_add_at", "timestamp"),
    ("checkouts_7d", "bigint"),
    ("email_opens_30d", "bigint"),
    ("email_clicks_30d", "bigint"),
)
COUNT_FEATURES = (
    "order_count",
    "product_views_30d",
    "cart_adds_7d",
    "checkouts_7d",
    "email_opens_30d",
    "email_clicks_30d",
)

# CRM is a current-state snapshot: its rows are used whatever their date.
CRM_SOURCE = "crm"


def with_customer(df: DataFrame, record_customer: DataFrame, source: str, key: str) -> DataFrame:
    """Rows of silver table ``source`` that resolved to a customer, with ``customer_id``.

    Args:
        df: the silver table.
        record_customer: ``source, record_key, customer_id`` (identity/record_customer).
        source: the silver table name as stored in ``record_customer``.
        key: the table's record key column.
    """
    mapping = record_customer.where(F.col("source") == source).select(
        F.col("record_key").alias("_record_key"), "customer_id"
    )
    return df.join(mapping, F.col(key).cast("string") == F.col("_record_key")).drop("_record_key")


@dataclass(frozen=True)
class ObservedSource:
    """Where a golden source's observations come from.

    Attributes:
        table: the silver table (also its name in identity/record_customer).
        key: the table's record key.
        observed_at: the time the record's values were true.
        columns: attribute -> the table's column holding it.
    """

    table: str
    key: str
    observed_at: str
    columns: Mapping[str, str]


# The sources survivorship rules name (GOLDEN_SOURCES in conf), and what each can supply.
OBSERVED_SOURCES: dict[str, ObservedSource] = {
    CRM_SOURCE: ObservedSource("crm_contacts", "contact_id", "updated_at", {a: a for a in ATTRIBUTES}),
    "events": ObservedSource(
        "events", "message_id", "event_ts", {a: a for a in ("email", "phone", "first_name", "last_name")}
    ),
    "orders": ObservedSource(
        "orders", "order_id", "order_ts", {"email": "customer_email", "phone": "customer_phone"}
    ),
    "email_events": ObservedSource("email_events", "event_id", "event_ts", {"email": "email"}),
}


def attribute_observations(
    silver: Mapping[str, DataFrame], record_customer: DataFrame, as_of: dt.datetime | None
) -> DataFrame | None:
    """Every value of the golden attributes a resolved silver record carries, one row per record.

    Args:
        silver: the silver tables (any subset).
        record_customer: identity/record_customer.
        as_of: records other than CRM observed after it are left out (None: none are).

    Returns:
        ``customer_id, source, observed_at`` and one column per attribute of
        :data:`ATTRIBUTES` (null where the record does not carry it), or None without any
        source table.
    """
    parts: list[DataFrame] = []
    for name, spec in OBSERVED_SOURCES.items():
        if spec.table not in silver:
            continue
        df = with_customer(silver[spec.table], record_customer, spec.table, spec.key)
        observed = F.col(spec.observed_at)
        if as_of is not None and name != CRM_SOURCE:
            df = df.where(at_or_before(observed, as_of))
        values = [
            (F.col(spec.columns[a]) if a in spec.columns else F.lit(None)).cast("string").alias(a)
            for a in ATTRIBUTES
        ]
        parts.append(
            df.select(
                "customer_id",
                F.lit(name).alias(SOURCE),
                observed.cast("timestamp").alias(OBSERVED_AT),
                *values,
            )
        )
    if not parts:
        return None
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out


def golden_attributes(
    silver: Mapping[str, DataFrame],
    record_customer: DataFrame,
    as_of: dt.datetime | None = None,
    settings: GoldenSettings | None = None,
) -> DataFrame | None:
    """One value per attribute and customer, chosen by the attribute's survivorship rule.

    With ``as_of``, values observed on events, orders and email after it are not used (CRM
    rows always are). Each attribute is chosen on its own, so a customer's phone may come
    from an order while the name comes from CRM. The default rules (``settings`` omitted)
    take CRM first, then the most recent non-null value; ties on priority and time go to
    the smallest value (deterministic). See :mod:`cdplake.features.survivorship`.

    Args:
        silver: the silver tables (any subset).
        record_customer: identity/record_customer.
        as_of: the evaluation time.
        settings: ``golden:`` of ``conf/features.yaml``.

    Returns:
        ``customer_id`` and :data:`ATTRIBUTES`, or None without any source table.
    """
    observations = attribute_observations(silver, record_customer, as_of)
    if observations is None:
        return None
    return survive(observations, settings or GoldenSettings(), ATTRIBUTES)


def order_features(orders: DataFrame, as_of: dt.datetime) -> DataFrame:
    """Order aggregates of orders placed at or before ``as_of``.

    ``revenue`` is completed minus refunded money. Silver holds one row per order and a refund
    turns the whole order's status to ``refunded`` (its total stays positive), so the money
    taken is every order's total and the money given back is the refunded orders' totals:
    the difference is the completed orders' totals. Refunded orders are not counted in
    ``order_count`` nor as ``last_order_at``.
    """
    placed = orders.where(at_or_before(F.col("order_ts"), as_of))
    completed = F.col("status") == "completed"
    refunded = F.col("status") == "refunded"
    total = F.col("total").cast("decimal(18,2)")
    return (
        placed.groupBy("customer_id")
        .agg(
            F.count_if(completed).alias("order_count"),
            (
                F.sum(F.when(completed | refunded, total))
                - F.coalesce(F.sum(F.when(refunded, total)), F.lit(0))
            ).alias("revenue"),
            F.max(F.when(completed, F.col("order_ts"))).alias("last_order_at"),
            F.min(F.when(completed, F.col("order_ts"))).alias("first_order_at"),
        )
        .withColumn("days_since_last_order", days_between(F.col("last_order_at"), as_of))
    )


def event_features(events: DataFrame, as_of: dt.datetime) -> DataFrame:
    """Browse and cart aggregates of events at or before ``as_of``."""
    ts = F.col("event_ts")
    seen = events.where(at_or_before(ts, as_of))
    is_view = F.col("event") == PRODUCT_VIEWED
    is_add = F.col("event") == PRODUCT_ADDED
    is_checkout = F.col("event") == CHECKOUT_STARTED
    return seen.groupBy("customer_id").agg(
        F.count_if(is_view & within_days(ts, as_of, 30)).alias("product_views_30d"),
        F.count_if(is_add & within_days(ts, as_of, 7)).alias("cart_adds_7d"),
        F.max(F.when(is_add, ts)).alias("last_cart_add_at"),
        F.count_if(is_checkout & within_days(ts, as_of, 7)).alias("checkouts_7d"),
    )


def email_features(email_events: DataFrame, as_of: dt.datetime) -> DataFrame:
    """Email engagement in the 30 days up to ``as_of``."""
    ts = F.col("event_ts")
    recent = email_events.where(within_days(ts, as_of, 30))
    return recent.groupBy("customer_id").agg(
        F.count_if(F.col("event") == "open").alias("email_opens_30d"),
        F.count_if(F.col("event") == "click").alias("email_clicks_30d"),
    )


def seen_features(
    silver: Mapping[str, DataFrame], record_customer: DataFrame, as_of: dt.datetime
) -> DataFrame | None:
    """First and last time the customer themselves showed up: events, orders, email opens/clicks."""
    parts: list[DataFrame] = []
    if "events" in silver:
        ev = with_customer(silver["events"], record_customer, "events", "message_id")
        parts.append(ev.select("customer_id", F.col("event_ts").alias("ts")))
    if "orders" in silver:
        od = with_customer(silver["orders"], record_customer, "orders", "order_id")
        parts.append(od.select("customer_id", F.col("order_ts").alias("ts")))
    if "email_events" in silver:
        em = with_customer(silver["email_events"], record_customer, "email_events", "event_id")
        # delivered/processed say nothing about the person; opens and clicks do.
        em = em.where(F.col("event").isin(*EMAIL_ENGAGEMENT))
        parts.append(em.select("customer_id", F.col("event_ts").alias("ts")))
    if not parts:
        return None
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return (
        out.where(at_or_before(F.col("ts"), as_of))
        .groupBy("customer_id")
        .agg(F.min("ts").alias("first_seen_at"), F.max("ts").alias("last_seen_at"))
    )


def trait_sources(
    silver: Mapping[str, DataFrame],
    record_customer: DataFrame,
    as_of: dt.datetime,
    config: FeaturesConfig,
) -> dict[str, DataFrame]:
    """The sources declared traits aggregate, each with ``customer_id`` and a time column ``ts``.

    Only rows at or before ``as_of`` are kept *before* anything is derived from them, so a
    machine open, a session or an abandoned cart is judged on what was known at ``as_of``.

    Returns:
        Any of ``orders`` (silver orders), ``events`` (silver events), ``email_events``
        (with ``is_machine_open`` / ``is_bot_click``), ``email_messages`` (one row per send,
        see :func:`cdplake.features.engagement.email_messages`) and ``sessions`` (see
        :func:`cdplake.features.browsing.sessions`), as far as the silver tables allow.
    """
    out: dict[str, DataFrame] = {}
    orders = events = None
    if "orders" in silver:
        orders = with_customer(silver["orders"], record_customer, "orders", "order_id")
        orders = orders.where(at_or_before(F.col("order_ts"), as_of))
        out["orders"] = orders.withColumn("ts", F.col("order_ts"))
    if "events" in silver:
        events = with_customer(silver["events"], record_customer, "events", "message_id")
        events = events.where(at_or_before(F.col("event_ts"), as_of))
        out["events"] = events.withColumn("ts", F.col("event_ts"))
        placed = order_times(orders, events)
        assert placed is not None
        out["sessions"] = browsing_sessions(events, placed, as_of, config.browsing)
    if "email_events" in silver:
        email = with_customer(silver["email_events"], record_customer, "email_events", "event_id")
        for optional in ("message_id", "url", "bounce_type", "user_agent"):
            if optional not in email.columns:  # a narrower frame than the silver contract
                email = email.withColumn(optional, F.lit(None).cast("string"))
        flagged = flag_email_events(email.where(at_or_before(F.col("event_ts"), as_of)), config.email)
        out["email_events"] = flagged.withColumn("ts", F.col("event_ts"))
        out["email_messages"] = email_messages(flagged)
    return out


def feature_columns(config: FeaturesConfig | None = None) -> list[str]:
    """Every column :func:`customer_features` returns, in order (``customer_id`` first)."""
    config = config or FeaturesConfig()
    return [
        "customer_id",
        *(n for n, _ in FEATURE_SCHEMA),
        *(n for n, _ in CLV_COLUMNS),
        *(n for n, _ in rfm_columns(config.rfm)),
        "top_categories",
        *(t.name for t in config.traits),
    ]


def customer_features(
    silver: Mapping[str, DataFrame],
    record_customer: DataFrame,
    as_of: dt.datetime,
    customers: DataFrame | None = None,
    config: FeaturesConfig | None = None,
) -> DataFrame:
    """One row per customer: golden attributes, built-in and declared features as of ``as_of``.

    Point in time: every activity record after ``as_of`` is ignored, so the features of a
    past ``as_of`` equal those computed from the data as it was then (golden attributes use
    every CRM row, see the module docstring).

    Args:
        silver: silver table name -> DataFrame; any subset of ``events``, ``email_events``,
            ``crm_contacts``, ``orders`` (features of an absent table are null / 0).
        record_customer: identity/record_customer (``source, record_key, customer_id``);
            every customer in it gets a row.
        as_of: the evaluation time; windows are ``(as_of - N days, as_of]``.
        customers: when given, only these ``customer_id`` s are computed (a micro-batch's
            touched customers); RFM scores are still ranked against all buyers.
        config: ``conf/features.yaml``; the defaults (no declared traits) when omitted.

    Returns:
        The columns of :func:`feature_columns`, in that order.

    Raises:
        FeatureDefinitionError: a declared trait's SQL does not compile, or its name is a
            built-in column's.
    """
    config = config or FeaturesConfig()
    builtin = set(feature_columns(FeaturesConfig(rfm=config.rfm)))
    clash = [t.name for t in config.traits if t.name in builtin]
    if clash:
        raise FeatureDefinitionError(f"trait(s) {clash} reuse the name of a built-in profile column")
    everyone = record_customer
    if customers is not None:
        record_customer = record_customer.join(
            customers.select("customer_id").distinct(), "customer_id", "left_semi"
        )
    profile = record_customer.select("customer_id").distinct()
    parts: list[DataFrame | None] = [
        golden_attributes(silver, record_customer, as_of, config.golden),
        seen_features(silver, record_customer, as_of),
    ]
    if "orders" in silver:
        orders = with_customer(silver["orders"], record_customer, "orders", "order_id")
        parts.append(order_features(orders, as_of))
        all_orders = with_customer(silver["orders"], everyone, "orders", "order_id")
        parts.append(rfm_features(all_orders, as_of, config.rfm))
    if "events" in silver:
        events = with_customer(silver["events"], record_customer, "events", "message_id")
        parts.append(event_features(events, as_of))
    if "email_events" in silver:
        email = with_customer(silver["email_events"], record_customer, "email_events", "event_id")
        parts.append(email_features(email, as_of))
    sources = trait_sources(silver, record_customer, as_of, config)
    parts.append(top_categories(sources.get("events"), sources.get("orders"), as_of, config.browsing))
    parts.extend(aggregate_traits(sources, config.traits, as_of))
    for part in parts:
        if part is not None:
            profile = profile.join(part, "customer_id", "left")

    present = set(profile.columns)
    out: list[Column] = [F.col("customer_id")]
    for name, dtype in (*FEATURE_SCHEMA, ("first_order_at", "timestamp")):
        value = F.col(name) if name in present else F.lit(None)
        if name in COUNT_FEATURES:
            value = F.coalesce(value, F.lit(0))
        out.append(value.cast(dtype).alias(name))
    for name, dtype in (*rfm_columns(config.rfm), ("top_categories", "array<string>")):
        out.append((F.col(name) if name in present else F.lit(None)).cast(dtype).alias(name))
    traits = [F.col(t.name) for t in config.traits if not t.is_expression and t.name in present]
    shaped = profile.select(*out, *traits)
    shaped = clv_columns(shaped, as_of, config.clv)
    shaped = fill_traits(shaped, config.traits)
    return shaped.select(*feature_columns(config))
