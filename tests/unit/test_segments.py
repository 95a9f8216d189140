"""Segments: the YAML loader's validation and evaluation of conditions over a profile."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from cdplake.config import ConfigError, SegmentDefinition, load_segments_config
from cdplake.config.segments import parse_segments_config
from cdplake.segments import SegmentDefinitionError, condition_columns, evaluate_segments

CONF = Path(__file__).resolve().parents[2] / "conf"
UTC = dt.timezone.utc
PURPOSES = {"marketing_email": {"requires": ["can_email_marketing"]}}
PROFILE_DDL = (
    "customer_id STRING, order_count BIGINT, revenue DECIMAL(18,2), last_order_at TIMESTAMP, "
    "days_since_last_order INT, cart_adds_7d BIGINT, last_cart_add_at TIMESTAMP"
)
MEMBERS_DDL = "segment_id STRING, customer_id STRING, definition_version INT, qualified_values STRING"


def seg(**overrides):
    base = {"id": "s1", "version": 1, "purpose": "marketing_email", "condition": "order_count > 0"}
    return {**base, **overrides}


def ts(month: int, day: int) -> dt.datetime:
    return dt.datetime(2026, month, day, tzinfo=UTC)


def test_repo_segments_yaml_loads():
    cfg = load_segments_config(CONF)
    assert [s.id for s in cfg.segments] == [
        "recent_purchasers",
        "cart_abandoners",
        "frequent_browsers",
        "highly_engaged",
        "lapsing_customers",
        "vip_rfm",
        "win_back",
        "browsing_now",
    ]
    assert {cfg.purpose_of(s).name for s in cfg.segments} == {"marketing_email"}
    assert "GB" in cfg.consent.opt_in_required_countries and "US" not in cfg.consent.opt_in_required_countries
    assert "NO" in cfg.consent.opt_in_required_countries  # Norway, not YAML's false
    assert cfg.consent.country_aliases["UNITED KINGDOM"] == "GB"
    assert cfg.purpose_of(cfg.segments[0]).requires == ("can_email_marketing",)
    assert cfg.purposes["transactional_email"].requires == ("has_valid_email",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"purposes": PURPOSES, "segments": [seg(), seg()]}, "defined more than once"),
        ({"purposes": PURPOSES, "segments": [seg(purpose="sms")]}, "unknown purpose 'sms'"),
        ({"purposes": PURPOSES, "segments": [seg(version=0)]}, "version must be a positive integer"),
        ({"purposes": PURPOSES, "segments": [seg(condition=" ")]}, "condition must be a non-empty"),
        ({"purposes": PURPOSES, "segments": [seg(colour="red")]}, "unknown key"),
        ({"purposes": PURPOSES, "segments": [{"id": "s1"}]}, "is missing"),
        ({"purposes": PURPOSES, "segments": [seg(id="Bad-Id")]}, "lower_snake_case"),
        ({"segments": [seg()]}, "purposes must be a non-empty mapping"),
    ],
)
def test_segments_config_validation(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_segments_config(raw)


def test_condition_columns_ignores_literals_and_functions():
    cols = ["customer_id", "order_count", "city", "last_order_at"]
    assert condition_columns(
        "order_count > 0 AND city = 'order_count' AND coalesce(`last_order_at`, 1)", cols
    ) == [
        "order_count",
        "city",
        "last_order_at",
    ]


def test_evaluate_example_segments(spark):
    cfg = load_segments_config(CONF)
    profile = spark.createDataFrame(
        [
            # ordered 5 days ago: recent purchaser; added to cart before that order: not abandoner
            ("a", 1, Decimal("10.00"), ts(10, 28), 5, 1, ts(10, 27)),
            # ordered 31 days ago: not recent; cart add after that order: abandoner
            ("b", 2, Decimal("20.00"), ts(10, 1), 31, 2, ts(10, 30)),
            # never ordered, one cart add: abandoner
            ("c", 0, None, None, None, 1, ts(10, 30)),
            # nothing at all
            ("d", 0, None, None, None, 0, None),
        ],
        PROFILE_DDL,
    )
    got = evaluate_segments(profile, cfg.segments[:2])
    expected = spark.createDataFrame(
        [
            # `features` listed: exactly those columns, in the listed order
            (
                "recent_purchasers",
                "a",
                1,
                '{"order_count":1,"last_order_at":"2026-10-28T00:00:00.000Z","days_since_last_order":5,'
                '"revenue":10.00}',
            ),
            # no `features` listed: the columns the condition names, in profile order
            (
                "cart_abandoners",
                "b",
                1,
                '{"last_order_at":"2026-10-01T00:00:00.000Z","cart_adds_7d":2,'
                '"last_cart_add_at":"2026-10-30T00:00:00.000Z"}',
            ),
            (
                "cart_abandoners",
                "c",
                1,
                '{"last_order_at":null,"cart_adds_7d":1,"last_cart_add_at":"2026-10-30T00:00:00.000Z"}',
            ),
        ],
        MEMBERS_DDL,
    )
    assertDataFrameEqual(got, expected)


def test_bad_condition_names_the_segment(spark):
    profile = spark.createDataFrame([], PROFILE_DDL)
    unknown_col = SegmentDefinition("typo_seg", 3, "", "marketing_email", "order_cnt > 0")
    with pytest.raises(SegmentDefinitionError, match=r"segment 'typo_seg' \(version 3\).*does not compile"):
        evaluate_segments(profile, [unknown_col])
    not_sql = SegmentDefinition("broken_seg", 1, "", "marketing_email", "order_count >>> AND")
    with pytest.raises(SegmentDefinitionError, match="segment 'broken_seg'"):
        evaluate_segments(profile, [not_sql])
    not_bool = SegmentDefinition("count_seg", 1, "", "marketing_email", "order_count + 1")
    with pytest.raises(SegmentDefinitionError, match="segment 'count_seg'.*not boolean"):
        evaluate_segments(profile, [not_bool])


RFM_PROFILE_DDL = (
    "customer_id STRING, order_count BIGINT, revenue DECIMAL(18,2), days_since_last_order INT, "
    "product_views_30d BIGINT, sessions_30d BIGINT, browsing_intensity DOUBLE, top_categories ARRAY<STRING>, "
    "email_open_rate DOUBLE, email_click_rate DOUBLE, email_opens_90d BIGINT, email_clicks_90d BIGINT, "
    "email_machine_opens_90d BIGINT, rfm_recency_days INT, rfm_score STRING, rfm_cell STRING, "
    "clv_historical DECIMAL(18,2), clv_p_alive DOUBLE, clv_predicted DECIMAL(18,2)"
)


def test_evaluate_browsing_engagement_and_rfm_segments(spark):
    cfg = load_segments_config(CONF)
    defs = [s for s in cfg.segments if s.id not in ("recent_purchasers", "cart_abandoners", "browsing_now")]

    def row(cid, orders, days, sessions, open_rate, clicks, cell):
        revenue = Decimal("10.00") * orders if orders else None
        return (
            cid,
            orders,
            revenue,
            days,
            3,
            sessions,
            1.5,
            ["shoes"],
            open_rate,
            0.1,
            2,
            clicks,
            1,
            days,
            "555" if cell else None,
            cell,
            revenue or Decimal("0.00"),
            0.5,
            Decimal("20.00"),
        )

    profile = spark.createDataFrame(
        [
            row("p1", 3, 5, 6, 0.4, 1, "champions"),  # on every boundary: browser, engaged, VIP
            row("p2", 2, 40, 5, 0.39, 3, "at_risk"),  # 5 sessions, 39% opens: neither; lapsing
            row("p3", 1, 20, 0, 0.9, 0, "hibernating"),  # opens a lot but never clicks; win-back
            row("p4", 1, 91, 0, None, 0, "loyal"),  # over 90 days since the last order: win-back
            row("p5", 0, None, 9, None, 0, None),  # never bought: only the browsing segment
            row("p6", 1, 10, 1, 0.5, 2, "about_to_sleep"),
            row("p7", 6, 60, 1, 0.1, 0, "cant_lose_them"),
        ],
        RFM_PROFILE_DDL,
    )
    got = evaluate_segments(profile, defs).select("segment_id", "customer_id", "definition_version")
    expected = spark.createDataFrame(
        [
            ("frequent_browsers", "p1", 1),
            ("frequent_browsers", "p5", 1),
            ("highly_engaged", "p1", 1),
            ("highly_engaged", "p6", 1),
            ("lapsing_customers", "p2", 1),
            ("lapsing_customers", "p6", 1),
            ("lapsing_customers", "p7", 1),
            ("vip_rfm", "p1", 1),
            ("win_back", "p3", 1),
            ("win_back", "p4", 1),
        ],
        "segment_id STRING, customer_id STRING, definition_version INT",
    )
    assertDataFrameEqual(got, expected)
    values = evaluate_segments(profile.where("customer_id = 'p5'"), [defs[0]]).first()["qualified_values"]
    assert values == (
        '{"sessions_30d":9,"product_views_30d":3,"browsing_intensity":1.5,"top_categories":["shoes"]}'
    )
