"""Built-in feature groups: machine opens and bot clicks, sessions and cart abandonment,
category affinity, RFM scores and cells, historical and predicted CLV (hand-computed)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

from pyspark.testing import assertDataFrameEqual

from cdplake.config import load_features_config
from cdplake.config.features import BrowsingSettings, ClvSettings, EmailSettings, RfmSettings
from cdplake.features import (
    clv_columns,
    email_messages,
    flag_email_events,
    rfm_features,
    sessions,
    top_categories,
)

CONF = Path(__file__).resolve().parents[2] / "conf"
UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 11, 2, tzinfo=UTC)
EMAIL_DDL = (
    "customer_id STRING, event_id STRING, message_id STRING, event STRING, event_ts TIMESTAMP, "
    "url STRING, bounce_type STRING, user_agent STRING"
)
EVENTS_DDL = (
    "customer_id STRING, message_id STRING, event STRING, event_ts TIMESTAMP, product_category STRING"
)
ITEMS = "array<struct<category:string,quantity:int>>"
ORDERS_DDL = f"customer_id STRING, order_id STRING, order_ts TIMESTAMP, status STRING, total DECIMAL(12,2), line_items {ITEMS}"
IPHONE = "Mozilla/5.0 (iPhone; CPU iPhone OS 18_6 like Mac OS X) AppleWebKit/605.1.15"
APPLE_PROXY = "Mozilla/5.0"


def at(
    month: int, day: int, hour: int = 0, minute: int = 0, second: int = 0, year: int = 2026
) -> dt.datetime:
    return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)


def test_machine_opens_and_bot_clicks(spark):
    settings = EmailSettings(
        machine_open_seconds=30,
        machine_open_user_agents=(r"^Mozilla/5\.0$",),
        bot_click_seconds=10,
        bot_click_burst_urls=3,
        bot_click_burst_seconds=5,
        bot_click_user_agents=("(?i)scanner",),
    )
    events = spark.createDataFrame(
        [
            # m1: proxy prefetch 10 s after delivery, then the person opens and clicks hours later
            ("a", "e1", "m1", "processed", at(10, 20, 9), None, None, None),
            ("a", "e2", "m1", "delivered", at(10, 20, 9, 0, 5), None, None, None),
            ("a", "e3", "m1", "open", at(10, 20, 9, 0, 15), None, None, APPLE_PROXY),
            ("a", "e4", "m1", "open", at(10, 20, 12), None, None, IPHONE),
            ("a", "e5", "m1", "click", at(10, 20, 12, 1), "u1", None, IPHONE),
            # m2: an ordinary user agent, but 20 s after delivery (<= 30): machine; a click 5 s
            # after delivery (<= 10): scanner; a click by a scanner user agent
            ("a", "e6", "m2", "delivered", at(10, 25, 9), None, None, None),
            ("a", "e7", "m2", "open", at(10, 25, 9, 0, 20), None, None, IPHONE),
            ("a", "e8", "m2", "click", at(10, 25, 9, 0, 5), "u1", None, IPHONE),
            ("a", "e9", "m2", "click", at(10, 25, 15), "u2", None, "LinkScanner/1.0"),
            # m3: three distinct links clicked within 2 s, hours after delivery: a scanner burst
            ("a", "e10", "m3", "delivered", at(10, 28, 9), None, None, None),
            ("a", "e11", "m3", "open", at(10, 28, 13, 59), None, None, IPHONE),
            ("a", "e12", "m3", "click", at(10, 28, 14, 0, 0), "u1", None, IPHONE),
            ("a", "e13", "m3", "click", at(10, 28, 14, 0, 1), "u2", None, IPHONE),
            ("a", "e14", "m3", "click", at(10, 28, 14, 0, 2), "u3", None, IPHONE),
            # m4 hard-bounces; m5 is delivered and reported as spam
            ("a", "e15", "m4", "bounce", at(10, 29), None, "bounce", None),
            ("b", "e16", "m5", "delivered", at(10, 29), None, None, None),
            ("b", "e17", "m5", "spamreport", at(10, 29, 1), None, None, None),
            # no message id: no delivery time, so only the user agent can tell
            ("b", "e18", None, "open", at(10, 30), None, None, APPLE_PROXY),
            ("b", "e19", None, "click", at(10, 30), "u1", None, IPHONE),
        ],
        EMAIL_DDL,
    )
    flagged = flag_email_events(events, settings)
    got = flagged.where("event IN ('open', 'click')").select("event_id", "is_machine_open", "is_bot_click")
    expected = spark.createDataFrame(
        [
            ("e3", True, False),
            ("e4", False, False),
            ("e5", False, False),
            ("e7", True, False),
            ("e8", False, True),
            ("e9", False, True),
            ("e11", False, False),
            ("e12", False, True),
            ("e13", False, True),
            ("e14", False, True),
            ("e18", True, False),
            ("e19", False, False),
        ],
        "event_id STRING, is_machine_open BOOLEAN, is_bot_click BOOLEAN",
    )
    assertDataFrameEqual(got, expected)

    cols = "sent, delivered, bounced, hard_bounced, human_opened, machine_opened, human_clicked, bot_clicked"
    cols += ", unsubscribed, complained"
    expected_messages = spark.createDataFrame(
        [
            ("a", "m1", at(10, 20, 9, 0, 5), 1, 1, 0, 0, 1, 1, 1, 0, 0, 0),
            ("a", "m2", at(10, 25, 9), 0, 1, 0, 0, 0, 1, 0, 1, 0, 0),  # only machine and bot
            ("a", "m3", at(10, 28, 9), 0, 1, 0, 0, 1, 0, 0, 1, 0, 0),
            ("a", "m4", at(10, 29), 0, 0, 1, 1, 0, 0, 0, 0, 0, 0),  # no delivery: first event's time
            ("b", "m5", at(10, 29), 0, 1, 0, 0, 0, 0, 0, 0, 0, 1),
            # e18/e19 have no message id and are not a send
        ],
        "customer_id STRING, message_id STRING, ts TIMESTAMP, "
        + ", ".join(f"{c.strip()} INT" for c in cols.split(",")),
    )
    assertDataFrameEqual(email_messages(flagged), expected_messages)


def test_sessions_and_cart_abandonment(spark):
    events = spark.createDataFrame(
        [
            ("a", "e1", "Page", at(10, 20, 10), None),
            ("a", "e2", "Product Viewed", at(10, 20, 10, 20), "shoes"),
            ("a", "e3", "Product Added", at(10, 20, 10, 50), "shoes"),  # gap of exactly 30 min: same session
            ("a", "e4", "Product Added", at(10, 21, 9), "bags"),  # new session
            ("a", "e5", "Product Viewed", at(10, 21, 9, 40), "bags"),  # 40 min later: new session
            ("a", "e6", "Product Added", at(11, 1, 12), "hats"),  # 24 h not over by as_of
            ("b", "e7", "Product Added", at(10, 25), "hats"),
            ("b", "e8", "Page", None, None),  # undated: cannot be placed in a session
        ],
        EVENTS_DDL,
    )
    orders = spark.createDataFrame(
        [("a", at(10, 20, 20)), ("a", at(10, 23, 9))], "customer_id STRING, order_ts TIMESTAMP"
    )
    got = sessions(events, orders, AS_OF, BrowsingSettings(session_gap_minutes=30, cart_abandonment_hours=24))
    expected = spark.createDataFrame(
        [
            # ordered 9 h 10 min after the cart add: kept
            ("a", 1, at(10, 20, 10), at(10, 20, 10, 50), 3, 1, 1, 3000, 0),
            # next order 10-23 09:00 is 48 h after the add (> 24 h): abandoned
            ("a", 2, at(10, 21, 9), at(10, 21, 9), 1, 0, 1, 0, 1),
            ("a", 3, at(10, 21, 9, 40), at(10, 21, 9, 40), 1, 1, 0, 0, 0),  # no cart: nothing to abandon
            ("a", 4, at(11, 1, 12), at(11, 1, 12), 1, 0, 1, 0, 0),  # deadline 11-02 12:00 > as_of
            ("b", 1, at(10, 25), at(10, 25), 1, 0, 1, 0, 1),  # never ordered
        ],
        "customer_id STRING, session_index BIGINT, ts TIMESTAMP, ended_at TIMESTAMP, events BIGINT, "
        "product_views BIGINT, cart_adds BIGINT, duration_seconds BIGINT, abandoned_cart INT",
    )
    assertDataFrameEqual(got, expected)


def test_top_categories_weighted_with_ties_by_name(spark):
    events = spark.createDataFrame(
        [
            ("a", "v1", "Product Viewed", at(10, 1), "shoes"),
            ("a", "v2", "Product Viewed", at(10, 2), "shoes"),
            ("a", "v3", "Product Viewed", at(10, 3), "shoes"),
            ("a", "v4", "Product Viewed", at(10, 4), "bags"),
            ("a", "c1", "Product Added", at(10, 4), "bags"),
            ("a", "v5", "Product Viewed", at(10, 5), "hats"),
            ("a", "v6", "Product Viewed", at(8, 3), "socks"),  # 91 days before as_of: outside 90
            ("a", "v7", "Product Viewed", at(8, 3), "socks"),
            ("b", "v8", "Product Viewed", at(10, 1), "y"),
            ("b", "v9", "Product Viewed", at(10, 1), "x"),
        ],
        EVENTS_DDL,
    )
    orders = spark.createDataFrame(
        [
            ("a", "o1", at(10, 6), "completed", Decimal("10.00"), [("hats", 1)]),
            ("a", "o2", at(10, 6), "refunded", Decimal("99.00"), [("shoes", 10)]),  # not a purchase
        ],
        ORDERS_DDL,
    )
    settings = BrowsingSettings(top_categories=2, category_window_days=90)
    got = top_categories(events, orders, AS_OF, settings)
    expected = spark.createDataFrame(
        [
            # hats 1 view + 1 bought x 5 = 6; bags 1 + cart add 3 = 4; shoes 3 views = 3
            ("a", ["hats", "bags"]),
            ("b", ["x", "y"]),  # 1 each: tie broken by name
        ],
        "customer_id STRING, top_categories ARRAY<STRING>",
    )
    assertDataFrameEqual(got, expected)


def test_rfm_quintiles_ties_and_cells(spark):
    cells = load_features_config(CONF).rfm.cells
    settings = RfmSettings(windows=(30, 365), score_window_days=365, cells=cells)
    orders = spark.createDataFrame(
        [
            ("c1", "o1", at(11, 1), "completed", Decimal("100.00"), []),
            ("c1", "o2", at(10, 20), "completed", Decimal("100.00"), []),
            ("c1", "o3", at(10, 10), "completed", Decimal("100.00"), []),
            ("c2", "o4", at(10, 31), "completed", Decimal("50.00"), []),
            ("c3", "o5", at(8, 1), "completed", Decimal("500.00"), []),
            ("c3", "o6", at(7, 1), "completed", Decimal("500.00"), []),
            ("c4", "o7", at(8, 1, year=2025), "completed", Decimal("20.00"), []),  # older than 365 days
            ("c5", "o8", at(10, 31), "completed", Decimal("30.00"), []),
            ("c5", "o9", at(10, 31), "refunded", Decimal("999.00"), []),  # refunds do not count
            ("c6", "o10", at(10, 1), "refunded", Decimal("5.00"), []),  # no completed order: no RFM row
            ("c1", "o11", at(11, 3), "completed", Decimal("1.00"), []),  # after as_of
        ],
        ORDERS_DDL,
    )
    got = rfm_features(orders, AS_OF, settings)
    # Scores: min(5, 1 + floor(5 * (rank - 1) / (5 - 1))), worst first, ties share the lower rank.
    # recency days (worst first): c4 458 r1, c3 93 r2, c2 2 = c5 2 r3, c1 1 r5 -> 1, 2, 3, 3, 5
    # frequency 365d: c4 0 r1, c2 1 = c5 1 r2, c3 2 r4, c1 3 r5 -> 1, 2, 2, 4, 5
    # monetary 365d: c4 0, c5 30, c2 50, c1 300, c3 1000 -> 1, 2, 3, 4, 5
    expected = spark.createDataFrame(
        [
            ("c1", 1, 3, Decimal("300.00"), 3, Decimal("300.00"), 5, 5, 4, "554", "champions"),
            ("c2", 2, 1, Decimal("50.00"), 1, Decimal("50.00"), 3, 2, 3, "323", "need_attention"),
            ("c3", 93, 0, Decimal("0.00"), 2, Decimal("1000.00"), 2, 4, 5, "245", "at_risk"),
            ("c4", 458, 0, Decimal("0.00"), 0, Decimal("0.00"), 1, 1, 1, "111", "hibernating"),
            ("c5", 2, 1, Decimal("30.00"), 1, Decimal("30.00"), 3, 2, 2, "322", "need_attention"),
        ],
        "customer_id STRING, rfm_recency_days INT, rfm_frequency_30d BIGINT, rfm_monetary_30d DECIMAL(18,2), "
        "rfm_frequency_365d BIGINT, rfm_monetary_365d DECIMAL(18,2), rfm_r_score INT, rfm_f_score INT, "
        "rfm_m_score INT, rfm_score STRING, rfm_cell STRING",
    )
    assertDataFrameEqual(got, expected)


def test_clv_historical_and_predicted(spark):
    profile = spark.createDataFrame(
        [
            ("a", 3, Decimal("300.00"), at(8, 4), 10),  # first order 90 days before as_of
            ("b", 1, Decimal("40.00"), at(10, 28), 5),
            ("c", 0, None, None, None),
        ],
        "customer_id STRING, order_count BIGINT, revenue DECIMAL(18,2), first_order_at TIMESTAMP, "
        "days_since_last_order INT",
    )
    got = clv_columns(profile, AS_OF, ClvSettings(horizon_days=365, min_tenure_days=30, prior_alive=0.9))
    expected = spark.createDataFrame(
        [
            # a: rate 3/90 = 0.033333; 0.9 e^(-10/30) = 0.644878; p_alive 0.644878 / 0.744878
            # = 0.865750; predicted 0.865750 * 0.033333 * 365 * 100.00 = 1053.33
            ("a", Decimal("100.00"), Decimal("300.00"), 1 / 30, 0.8657499, Decimal("1053.33")),
            # b: tenure 5 days, floored to 30: rate 1/30; 0.9 e^(-5/30) = 0.761834;
            # p_alive 0.761834 / 0.861834 = 0.883968; 0.883968 * 1/30 * 365 * 40.00 = 430.20
            ("b", Decimal("40.00"), Decimal("40.00"), 1 / 30, 0.8839683, Decimal("430.20")),
            ("c", None, Decimal("0.00"), None, None, None),  # never bought: historical 0, no prediction
        ],
        "customer_id STRING, avg_order_value DECIMAL(18,2), clv_historical DECIMAL(18,2), "
        "clv_purchase_rate DOUBLE, clv_p_alive DOUBLE, clv_predicted DECIMAL(18,2)",
    )
    assertDataFrameEqual(
        got.select(
            "customer_id",
            "avg_order_value",
            "clv_historical",
            "clv_purchase_rate",
            "clv_p_alive",
            "clv_predicted",
        ),
        expected,
        rtol=1e-6,
    )
