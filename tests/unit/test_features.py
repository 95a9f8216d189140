"""Customer features: golden attributes and activity aggregates relative to an injected as_of."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from pyspark.testing import assertDataFrameEqual

from cdplake.config import load_features_config
from cdplake.features import FEATURE_SCHEMA, customer_features, feature_columns

CONF = Path(__file__).resolve().parents[2] / "conf"
UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 11, 2, 0, 0, tzinfo=UTC)

CRM_DDL = (
    "contact_id STRING, email STRING, phone STRING, first_name STRING, last_name STRING, city STRING, "
    "postcode STRING, country STRING, loyalty_tier STRING, updated_at TIMESTAMP"
)
EVENTS_DDL = (
    "message_id STRING, event STRING, event_ts TIMESTAMP, email STRING, phone STRING, "
    "first_name STRING, last_name STRING"
)
ORDERS_DDL = "order_id STRING, order_ts TIMESTAMP, status STRING, total DECIMAL(12,2), customer_email STRING, customer_phone STRING"
EMAIL_DDL = "event_id STRING, event STRING, event_ts TIMESTAMP, email STRING"
RC_DDL = "source STRING, record_key STRING, customer_id STRING"


def ts(month: int, day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=UTC)


def test_golden_attributes_prefer_crm_then_newest(spark):
    crm = spark.createDataFrame(
        [
            ("k1", "ann@crm.com", None, "Ann", None, "London", "N1 9GU", "GB", "gold", ts(10, 1)),
            ("k2", "ann2@crm.com", None, None, "Smith", None, None, None, None, ts(10, 20)),
        ],
        CRM_DDL,
    )
    events = spark.createDataFrame(
        [
            # newer than both CRM rows, but CRM wins for email and first name
            ("m1", "Identify", ts(10, 30), "ann@web.com", "+447700900001", "Annie", None),
            ("m2", "Identify", ts(10, 5), None, None, "Bob", None),
        ],
        EVENTS_DDL,
    )
    orders = spark.createDataFrame(
        [("o1", ts(10, 31), "completed", Decimal("10.00"), "ann@till.com", "+447700900002")], ORDERS_DDL
    )
    record_customer = spark.createDataFrame(
        [
            ("crm_contacts", "k1", "cus_a"),
            ("crm_contacts", "k2", "cus_a"),
            ("events", "m1", "cus_a"),
            ("orders", "o1", "cus_a"),
            ("events", "m2", "cus_b"),
        ],
        RC_DDL,
    )
    got = customer_features({"crm_contacts": crm, "events": events, "orders": orders}, record_customer, AS_OF)
    attrs = "customer_id, email, phone, first_name, last_name, city, postcode, country, loyalty_tier"
    expected = spark.createDataFrame(
        [
            # email: both CRM rows have one, k2 (10-20) is newer than k1 (10-01)
            # phone: no CRM phone, so the newest observed: order o1 (10-31) beats event m1 (10-30)
            # first_name: k2 has none, so k1's; last_name only on k2; the rest only on k1
            ("cus_a", "ann2@crm.com", "+447700900002", "Ann", "Smith", "London", "N1 9GU", "GB", "gold"),
            ("cus_b", None, None, "Bob", None, None, None, None, None),
        ],
        ", ".join(f"{c} STRING" for c in attrs.split(", ")),
    )
    assertDataFrameEqual(got.select(*attrs.split(", ")), expected)


def test_activity_features_relative_to_as_of(spark):
    orders = spark.createDataFrame(
        [
            ("o1", ts(10, 31, 10), "completed", Decimal("100.00"), None, None),
            ("o2", ts(9, 1, 9), "completed", Decimal("50.50"), None, None),
            ("o3", ts(10, 15), "refunded", Decimal("20.00"), None, None),
            ("o4", ts(11, 5), "completed", Decimal("999.00"), None, None),  # after as_of: ignored
        ],
        ORDERS_DDL,
    )
    events = spark.createDataFrame(
        [
            # 30-day window is (10-03 00:00, 11-02 00:00]
            ("v1", "Product Viewed", ts(10, 3, 1), None, None, None, None),  # in
            ("v2", "Product Viewed", ts(10, 2, 23), None, None, None, None),  # out
            ("v3", "Product Viewed", ts(11, 1, 12), None, None, None, None),  # in
            # 7-day window is (10-26 00:00, 11-02 00:00]
            ("a1", "Product Added", ts(10, 26, 0), None, None, None, None),  # on the open bound: out
            ("a2", "Product Added", ts(10, 30), None, None, None, None),  # in
            ("a3", "Product Added", ts(11, 3), None, None, None, None),  # after as_of: ignored
            ("c1", "Checkout Started", ts(10, 31), None, None, None, None),  # in
            ("c2", "Checkout Started", ts(10, 20), None, None, None, None),  # out
        ],
        EVENTS_DDL,
    )
    email = spark.createDataFrame(
        [
            ("e1", "open", ts(10, 10), None),
            ("e2", "open", ts(10, 25), None),
            ("e3", "click", ts(10, 25), None),
            ("e4", "open", ts(9, 1, 12), None),  # outside 30 days
            ("e5", "delivered", ts(10, 30), None),  # neither an open nor "seen"
        ],
        EMAIL_DDL,
    )
    crm = spark.createDataFrame([("k9", None, None, None, None, None, None, None, None, ts(10, 1))], CRM_DDL)
    keys = {"orders": ["o1", "o2", "o3", "o4"], "events": ["v1", "v2", "v3", "a1", "a2", "a3", "c1", "c2"]}
    keys["email_events"] = ["e1", "e2", "e3", "e4", "e5"]
    rows = [(source, k, "cus_a") for source, ks in keys.items() for k in ks]
    record_customer = spark.createDataFrame([*rows, ("crm_contacts", "k9", "cus_b")], RC_DDL)

    got = customer_features(
        {"orders": orders, "events": events, "email_events": email, "crm_contacts": crm},
        record_customer,
        AS_OF,
    )
    activity = [name for name, _ in FEATURE_SCHEMA[8:]]
    expected = spark.createDataFrame(
        [
            (
                "cus_a",
                ts(9, 1, 9),  # first_seen_at: order o2, earlier than the 09-01 12:00 open
                ts(11, 1, 12),  # last_seen_at: view v3 (a3 and o4 are after as_of)
                2,  # order_count: o1, o2 completed (o4 is in the future)
                # revenue: taken 100.00 + 50.50 + 20.00 (o3), given back 20.00 (o3 refunded)
                Decimal("150.50"),
                ts(10, 31, 10),  # last_order_at: o1
                2,  # days_since_last_order: 2026-11-02 - 2026-10-31
                2,  # product_views_30d: v1, v3
                1,  # cart_adds_7d: a2
                ts(10, 30),  # last_cart_add_at: a2 (a3 is after as_of)
                1,  # checkouts_7d: c1
                2,  # email_opens_30d: e1, e2
                1,  # email_clicks_30d: e3
            ),
            # CRM only: counts are 0, times and revenue unknown
            ("cus_b", None, None, 0, None, None, None, 0, 0, None, 0, 0, 0),
        ],
        "customer_id STRING, " + ", ".join(f"{n} {t}" for n, t in FEATURE_SCHEMA[8:]),
    )
    assertDataFrameEqual(got.select("customer_id", *activity), expected)


def test_features_have_fixed_schema_even_without_sources(spark):
    record_customer = spark.createDataFrame([("events", "m1", "cus_a")], RC_DDL)
    events = spark.createDataFrame([], EVENTS_DDL)
    config = load_features_config(CONF)
    got = customer_features({"events": events}, record_customer, AS_OF, config=config)
    assert got.columns == feature_columns(config)
    # The built-in columns keep their types whatever sources are present.
    fixed = got.select("customer_id", *(n for n, _ in FEATURE_SCHEMA))
    assert fixed.schema.simpleString() == (
        "struct<customer_id:string," + ",".join(f"{n}:{t}" for n, t in FEATURE_SCHEMA) + ">"
    )
