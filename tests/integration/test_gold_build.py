"""build_gold end to end over contract-shaped silver: profile, consent gate, membership, summary."""

from __future__ import annotations

import dataclasses
import datetime as dt
from decimal import Decimal

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from test_identity_resolve import ANN, BOB, CAT, ORD3, ORD4, write_silver

from cdplake.config import load_segments_config
from cdplake.features import ATTRIBUTES
from cdplake.identity import resolve_identities
from cdplake.segments import build_gold

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
RUN1_AT = dt.datetime(2026, 11, 2, tzinfo=UTC)
RUN2_AT = dt.datetime(2026, 11, 25, tzinfo=UTC)


def test_build_gold_two_runs(spark, lake_env):
    write_silver(spark, lake_env)
    resolve_identities(spark, lake_env, "run-1")

    def table(name):
        return spark.read.format("delta").load(lake_env.paths.table("gold", name))

    # The purchase/cart segments and browsing_now of conf/segments.yaml (the RFM and engagement
    # ones are covered by tests/unit/test_segments.py); the conf's consent rules stay in force.
    conf = load_segments_config(lake_env.conf_dir)
    segments = dataclasses.replace(
        conf,
        segments=tuple(
            s for s in conf.segments if s.id in ("recent_purchasers", "cart_abandoners", "browsing_now")
        ),
    )
    first = build_gold(spark, lake_env, "run-1", RUN1_AT, segments=segments)
    # recent_purchasers (order in 30 days): Ann (13 days), Bob (8 days, refused email -> excluded)
    # cart_abandoners (cart add in 7 days after last order): Ann (10-30 > 10-20), Cat (no email -> excluded)
    assert first.profiles == 5
    # browsing_now: nobody, there is no gold/realtime_signals table (product_views_1h = 0)
    assert first.segment_sizes == {"recent_purchasers": 1, "cart_abandoners": 1, "browsing_now": 0}
    assert first.excluded == {"recent_purchasers": 1, "cart_abandoners": 1, "browsing_now": 0}
    assertDataFrameEqual(
        table("customer_profile").select(
            "customer_id",
            "email",
            "order_count",
            "revenue",
            "email_opt_in",
            "has_valid_email",
            "can_email_marketing",
        ),
        spark.createDataFrame(
            [
                (ANN, "ann@x.com", 1, Decimal("40.00"), True, True, True),
                (BOB, "bob@y.com", 1, Decimal("25.00"), False, True, False),
                (CAT, None, 0, None, False, False, False),
                # the placeholder email is kept as typed but is not a valid address
                (ORD3, "test@example.com", 1, Decimal("5.00"), False, False, False),
                (ORD4, "test@example.com", 1, Decimal("6.00"), False, False, False),
            ],
            "customer_id STRING, email STRING, order_count BIGINT, revenue DECIMAL(18,2), "
            "email_opt_in BOOLEAN, has_valid_email BOOLEAN, can_email_marketing BOOLEAN",
        ),
    )

    # 23 days later Ann's order is 36 days old and her cart add 26: she leaves both segments.
    second = build_gold(spark, lake_env, "run-2", RUN2_AT, segments=segments)
    assert second.segment_sizes == {"recent_purchasers": 0, "cart_abandoners": 0, "browsing_now": 0}
    assert second.excluded == {"recent_purchasers": 0, "cart_abandoners": 0, "browsing_now": 0}

    assertDataFrameEqual(
        table("segment_membership"),
        spark.createDataFrame(
            [
                (
                    "recent_purchasers",
                    ANN,
                    1,
                    RUN1_AT,
                    RUN2_AT,
                    False,
                    '{"order_count":1,"last_order_at":"2026-10-20T12:00:00.000Z",'
                    '"days_since_last_order":13,"revenue":40.00}',
                    "run-2",
                ),
                (
                    "cart_abandoners",
                    ANN,
                    1,
                    RUN1_AT,
                    RUN2_AT,
                    False,
                    '{"last_order_at":"2026-10-20T12:00:00.000Z","cart_adds_7d":1,'
                    '"last_cart_add_at":"2026-10-30T12:00:00.000Z"}',
                    "run-2",
                ),
            ],
            "segment_id STRING, customer_id STRING, definition_version INT, entered_at TIMESTAMP, "
            "exited_at TIMESTAMP, is_member BOOLEAN, qualified_values STRING, run_id STRING",
        ),
    )
    assertDataFrameEqual(
        table("segment_summary"),
        spark.createDataFrame(
            [
                ("run-1", "recent_purchasers", 1, 1, 1, RUN1_AT),
                ("run-1", "cart_abandoners", 1, 1, 1, RUN1_AT),
                ("run-1", "browsing_now", 1, 0, 0, RUN1_AT),
                ("run-2", "recent_purchasers", 1, 0, 0, RUN2_AT),
                ("run-2", "cart_abandoners", 1, 0, 0, RUN2_AT),
                ("run-2", "browsing_now", 1, 0, 0, RUN2_AT),
            ],
            "run_id STRING, segment_id STRING, definition_version INT, size BIGINT, "
            "excluded_no_consent BIGINT, computed_at TIMESTAMP",
        ),
    )
    # The golden attributes did not change between the runs (same silver): the history holds
    # run 1's versions only, still current; run 2 opened and closed nothing.
    expected_history = table("customer_profile").select(
        "customer_id",
        *ATTRIBUTES,
        F.lit(RUN1_AT).cast("timestamp").alias("valid_from"),
        F.lit(None).cast("timestamp").alias("valid_to"),
        F.lit(True).alias("is_current"),
        F.lit("run-1").alias("run_id"),
    )
    assertDataFrameEqual(table("customer_profile_history"), expected_history)
