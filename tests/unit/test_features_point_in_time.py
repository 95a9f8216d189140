"""Point in time: features as of a past date equal those computed from the data as it was then,
and features for a subset of customers equal the full computation's rows for them."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.config import load_features_config
from cdplake.features import customer_features
from cdplake.segments import build_profile

CONF = Path(__file__).resolve().parents[2] / "conf"
UTC = dt.timezone.utc
PAST = dt.datetime(2026, 10, 20, tzinfo=UTC)
NOW = dt.datetime(2026, 11, 2, tzinfo=UTC)

CRM_DDL = (
    "contact_id STRING, email STRING, phone STRING, first_name STRING, last_name STRING, city STRING, "
    "postcode STRING, country STRING, loyalty_tier STRING, updated_at TIMESTAMP, email_opt_in BOOLEAN, "
    "email_opt_in_at TIMESTAMP"
)
EVENTS_DDL = (
    "message_id STRING, event STRING, event_ts TIMESTAMP, email STRING, phone STRING, first_name STRING, "
    "last_name STRING, product_category STRING"
)
ITEMS = "array<struct<category:string,quantity:int>>"
ORDERS_DDL = (
    "order_id STRING, order_ts TIMESTAMP, status STRING, channel STRING, total DECIMAL(12,2), "
    f"customer_email STRING, customer_phone STRING, line_items {ITEMS}"
)
EMAIL_DDL = (
    "event_id STRING, message_id STRING, event STRING, event_ts TIMESTAMP, email STRING, url STRING, "
    "bounce_type STRING, user_agent STRING"
)
RC_DDL = "source STRING, record_key STRING, customer_id STRING"
UA = "Mozilla/5.0 (Macintosh; Intel Mac OS X 10_15_7) AppleWebKit/605.1.15"


def at(month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, minute, second, tzinfo=UTC)


@pytest.fixture
def lake(spark):
    """Silver tables whose rows straddle PAST, so every group has something to get wrong."""
    orders = [
        ("o1", at(9, 10), "completed", "web", Decimal("50.00"), "ann@x.com", None, [("shoes", 1)]),
        ("o2", at(10, 19, 23), "completed", "pos", Decimal("30.00"), None, "+447700900001", [("bags", 1)]),
        ("o3", at(10, 25), "completed", "web", Decimal("70.00"), "ann@new.com", None, [("hats", 2)]),  # after
        ("o4", at(10, 5), "refunded", "web", Decimal("20.00"), None, None, [("shoes", 1)]),
        ("o5", at(10, 28), "completed", "web", Decimal("100.00"), "bob@x.com", None, [("bags", 1)]),  # after
        ("o6", at(10, 1), "completed", "pos", Decimal("40.00"), None, None, [("socks", 1)]),
    ]
    events = [
        # a session that starts before PAST and goes on after it
        ("v1", "Product Viewed", at(10, 19, 23, 50), None, None, None, None, "shoes"),
        ("v2", "Product Viewed", at(10, 20, 0, 10), "ann@web.com", None, "Annie", None, "shoes"),  # after
        # abandoned by PAST (no order within 24 h of 10-18 12:00)
        ("a1", "Product Added", at(10, 18, 12), None, None, None, None, "bags"),
        # 24 h not over at PAST; the order that follows is after PAST
        ("a2", "Product Added", at(10, 19, 10), None, None, None, None, "hats"),
        ("a3", "Product Added", at(10, 15), None, None, None, None, "socks"),
        ("a4", "Product Added", at(10, 30), None, None, None, None, "bags"),  # after
    ]
    email = [
        # delivered before PAST, the proxy open just before it and a human click after it
        ("e1", "m1", "delivered", at(10, 19, 23, 59, 50), "ann@x.com", None, None, None),
        ("e2", "m1", "open", at(10, 19, 23, 59, 55), "ann@x.com", None, None, "Mozilla/5.0"),
        ("e3", "m1", "open", at(10, 21), "ann@x.com", None, None, UA),  # after
        ("e4", "m1", "click", at(10, 21, 0, 1), "ann@x.com", "https://shop/x", None, UA),  # after
        ("e5", "m2", "processed", at(10, 10), "ann@x.com", None, None, None),
        ("e6", "m2", "delivered", at(10, 10, 0, 0, 3), "ann@x.com", None, None, None),
        ("e7", "m2", "open", at(10, 11), "ann@x.com", None, None, UA),
        ("e8", "m2", "spamreport", at(10, 25), "ann@x.com", None, None, None),  # after
    ]
    crm = [("k1", "ann@crm.com", None, "Ann", None, "Leeds", None, "GB", "gold", at(10, 30), True, at(9, 1))]
    keys = {
        "cus_a": {"orders": ["o1", "o2", "o3", "o4"], "events": ["v1", "v2", "a1", "a2"]},
        "cus_b": {"orders": ["o5"], "events": ["a4"]},
        "cus_c": {"orders": ["o6"], "events": ["a3"]},
    }
    rc = [(s, k, c) for c, by in keys.items() for s, ks in by.items() for k in ks]
    rc += [("email_events", e[0], "cus_a") for e in email] + [("crm_contacts", "k1", "cus_d")]
    return {
        "orders": spark.createDataFrame(orders, ORDERS_DDL),
        "events": spark.createDataFrame(events, EVENTS_DDL),
        "email_events": spark.createDataFrame(email, EMAIL_DDL),
        "crm_contacts": spark.createDataFrame(crm, CRM_DDL),
    }, spark.createDataFrame(rc, RC_DDL)


def truncated(silver, moment):
    """The silver tables as they were at ``moment`` (CRM is a current-state snapshot: kept)."""
    ts = {"orders": "order_ts", "events": "event_ts", "email_events": "event_ts"}
    return {name: df.where(F.col(ts[name]) <= moment) if name in ts else df for name, df in silver.items()}


def test_past_as_of_equals_truncated_data(lake):
    silver, record_customer = lake
    config = load_features_config(CONF)
    from_history = customer_features(silver, record_customer, PAST, config=config)
    from_then = customer_features(truncated(silver, PAST), record_customer, PAST, config=config)
    assertDataFrameEqual(from_history, from_then)

    # Not vacuous: the later rows do change the features of a later as_of.
    now = customer_features(silver, record_customer, NOW, config=config)
    cols = ["customer_id", "order_count", "email_opens_90d", "email_complaints", "rfm_cell"]
    assertDataFrameEqual(
        from_history.select(*cols),
        from_history.sparkSession.createDataFrame(
            [
                # at PAST: o1, o2 completed; m2 opened by a person (m1 only by the proxy)
                # R: a 1 day (score 5), c 19 days (1); F: a 2 (5), c 1 (1); M: a 80 (5), c 40 (1)
                ("cus_a", 2, 1, 0, "champions"),
                ("cus_b", 0, 0, 0, None),  # first order after PAST: not a buyer yet
                ("cus_c", 1, 0, 0, "hibernating"),
                ("cus_d", 0, 0, 0, None),
            ],
            "customer_id STRING, order_count BIGINT, email_opens_90d BIGINT, email_complaints BIGINT, "
            "rfm_cell STRING",
        ),
    )
    assert now.where("customer_id = 'cus_a'").select(*cols[1:4]).first() == (3, 2, 1)


def test_features_for_a_subset_equal_the_full_rows(lake, spark):
    silver, record_customer = lake
    config = load_features_config(CONF)
    wanted = spark.createDataFrame([("cus_c",), ("cus_a",), ("cus_a",)], "customer_id STRING")
    subset = customer_features(silver, record_customer, PAST, customers=wanted, config=config)
    everyone = customer_features(silver, record_customer, PAST, config=config)
    # RFM scores are still ranked against every buyer, so they match the full run.
    assertDataFrameEqual(subset, everyone.where(F.col("customer_id").isin("cus_a", "cus_c")))


def test_profile_with_consent_for_a_subset_equals_the_full_rows(lake, spark):
    silver, record_customer = lake
    config = load_features_config(CONF)
    wanted = spark.createDataFrame([("cus_a",), ("cus_d",)], "customer_id STRING")
    subset = build_profile(silver, record_customer, NOW, features=config, customers=wanted)
    everyone = build_profile(silver, record_customer, NOW, features=config)
    assertDataFrameEqual(subset, everyone.where(F.col("customer_id").isin("cus_a", "cus_d")))
    # cus_a reported spam on 10-25: never marketable
    assert subset.where("customer_id = 'cus_a'").select(
        "email_complained", "can_email_marketing"
    ).first() == (
        True,
        False,
    )
