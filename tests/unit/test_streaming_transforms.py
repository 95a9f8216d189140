"""Streaming pieces that need no I/O: config, sliding windows, real-time features, consumers."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from cdplake.config import ConfigError
from cdplake.config.segments import parse_segments_config
from cdplake.config.streaming import (
    SignalSettings,
    check_trigger,
    interval_seconds,
    load_streaming_config,
    parse_streaming_config,
)
from cdplake.consumers import membership_events, segment_export_rows
from cdplake.features.realtime import SIGNALS_DDL, current_window_end, realtime_features
from cdplake.streaming.signals import product_view_windows

UTC = dt.timezone.utc
H = dt.datetime(2026, 11, 1, 12, 0, tzinfo=UTC)  # 12:00 UTC


def at(minutes: float) -> dt.datetime:
    return H + dt.timedelta(minutes=minutes)


def test_repo_streaming_yaml_loads(tmp_path):
    from pathlib import Path

    cfg = load_streaming_config(Path(__file__).resolve().parents[2] / "conf")
    assert cfg.trigger == "availableNow"
    assert cfg.signals == SignalSettings("1 hour", "5 minutes", "10 minutes")
    assert (cfg.signals.window_seconds, cfg.signals.slide_seconds) == (3600, 300)
    assert cfg.realtime_lane is True
    assert parse_streaming_config({"realtime_lane": False}).realtime_lane is False
    assert cfg.gold_share == 0.25
    assert parse_streaming_config({"gold_share": 1}).gold_share == 1.0
    # no file: the defaults
    assert load_streaming_config(tmp_path).signals.slide_seconds == 300


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"trigger": "often"}, "interval must look like"),
        ({"signals": {"window": "1 hour", "slide": "7 minutes"}}, "must divide"),
        ({"signals": {"slide": "0 seconds"}}, "interval must look like"),
        ({"signals": {"size": "1 hour"}}, "unknown key"),
        ({"speed": 1}, "unknown key"),
        ({"dataset_checks_every": -1}, "whole number"),
        ({"dataset_checks_every": "often"}, "whole number"),
        ({"realtime_lane": "yes"}, "true or false"),
        ({"gold_share": 0}, "gold_share"),
        ({"gold_share": 1.5}, "gold_share"),
        ({"gold_share": "half"}, "gold_share"),
        ({"gold_share": True}, "gold_share"),
    ],
)
def test_streaming_config_validation(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_streaming_config(raw)


def test_dataset_checks_cadence():
    assert [parse_streaming_config({}).dataset_checks_in(c) for c in (1, 2, 3)] == [True, True, True]
    every_3 = parse_streaming_config({"dataset_checks_every": 3})
    assert [every_3.dataset_checks_in(c) for c in (1, 2, 3, 4, 5, 6)] == [
        False,
        False,
        True,
        False,
        False,
        True,
    ]
    assert not parse_streaming_config({"dataset_checks_every": 0}).dataset_checks_in(1)


def test_triggers_and_intervals():
    assert check_trigger("availableNow") == "availableNow"
    assert check_trigger("10 seconds") == "10 seconds"
    assert interval_seconds("1 second") == 1
    assert interval_seconds("2 hours") == 7200
    with pytest.raises(ConfigError):
        check_trigger("available now")


@pytest.mark.parametrize(
    ("moment", "end"),
    [
        (at(7.5), at(10)),  # 12:07:30 -> the window [11:10, 12:10)
        (at(10), at(15)),  # a boundary belongs to the window that starts there
        (at(0.001), at(5)),
        (dt.datetime(2026, 11, 1, 13, 7, 30), at(70)),  # naive means UTC
    ],
)
def test_current_window_end(moment, end):
    assert current_window_end(moment, 300) == end


EVENTS_DDL = "message_id STRING, event STRING, event_ts TIMESTAMP, user_id STRING, anonymous_id STRING"


def test_product_view_windows_counts_each_view_in_every_sliding_window(spark):
    events = spark.createDataFrame(
        [
            ("m1", "Product Viewed", at(1), "u1", "a1"),  # user_id wins over anonymous_id
            ("m2", "Product Viewed", at(6), None, "a2"),
            ("m3", "Product Viewed", at(7), " ", "a2"),  # blank user id -> anonymous id
            ("m4", "Product Added", at(2), "u1", None),  # not a view
            ("m5", "Product Viewed", at(3), None, None),  # no id: counted under ("none", "")
        ],
        EVENTS_DDL,
    )
    settings = SignalSettings(window="10 minutes", slide="5 minutes", watermark="1 minute")
    out = product_view_windows(events, settings)
    # 10-minute windows every 5 minutes: 12:01 is in [11:55,12:05) and [12:00,12:10);
    # 12:06 and 12:07 are both in [12:00,12:10) and [12:05,12:15).
    expected = spark.createDataFrame(
        [
            ("user_id", "u1", at(-5), at(5), 1, at(1)),
            ("user_id", "u1", at(0), at(10), 1, at(1)),
            ("anonymous_id", "a2", at(0), at(10), 2, at(7)),
            ("anonymous_id", "a2", at(5), at(15), 2, at(7)),
            ("none", "", at(-5), at(5), 1, at(3)),
            ("none", "", at(0), at(10), 1, at(3)),
        ],
        SIGNALS_DDL,
    )
    assertDataFrameEqual(out, expected, checkRowOrder=False)


def test_realtime_features_sum_a_customers_ids_in_the_current_window(spark):
    signals = spark.createDataFrame(
        [
            ("user_id", "u1", at(-50), at(10), 2, at(5)),
            ("anonymous_id", "a1", at(-50), at(10), 3, at(6)),
            ("user_id", "u1", at(-55), at(5), 9, at(4)),  # an older window: not current
            ("anonymous_id", "zz", at(-50), at(10), 4, at(6)),  # unknown visitor: no customer
        ],
        SIGNALS_DDL,
    )
    customer_map = spark.createDataFrame(
        [("user_id", "u1", "C1"), ("anonymous_id", "a1", "C1"), ("user_id", "u2", "C2")],
        "id_type STRING, id_value STRING, customer_id STRING",
    )
    out = realtime_features(signals, customer_map, at(7.5), 300)
    # as of 12:07:30 the current window ends 12:10; C1 = 2 (u1) + 3 (a1)
    assertDataFrameEqual(
        out, spark.createDataFrame([("C1", 5)], "customer_id STRING, product_views_1h BIGINT")
    )


CDF_DDL = (
    "segment_id STRING, customer_id STRING, definition_version INT, entered_at TIMESTAMP, "
    "exited_at TIMESTAMP, is_member BOOLEAN, qualified_values STRING, run_id STRING, "
    "_change_type STRING, _commit_version BIGINT, _commit_timestamp TIMESTAMP"
)


def test_membership_events_turn_entries_and_exits_into_events(spark):
    t0, t1 = at(0), at(60)
    changes = spark.createDataFrame(
        [
            ("s", "C1", 1, t0, None, True, "{}", "r1", "insert", 1, at(1)),
            ("s", "C2", 1, t0, None, True, "{}", "r1", "update_preimage", 2, at(61)),
            ("s", "C2", 1, t0, t1, False, "{}", "r2", "update_postimage", 2, at(61)),
            ("s", "C3", 1, t0, None, True, "{}", "r2", "delete", 2, at(61)),  # not a membership event
        ],
        CDF_DDL,
    )
    out = membership_events(changes)
    assert out.columns[:2] == ["event_id", "event_type"]
    assertDataFrameEqual(
        out.drop("event_id"),
        spark.createDataFrame(
            [
                ("entered", "s", "C1", 1, t0, t0, "{}", 1, at(1)),
                ("exited", "s", "C2", 1, t1, t0, "{}", 2, at(61)),
            ],
            "event_type STRING, segment_id STRING, customer_id STRING, definition_version INT, "
            "occurred_at TIMESTAMP, entered_at TIMESTAMP, qualified_values STRING, commit_version BIGINT, "
            "commit_timestamp TIMESTAMP",
        ),
        checkRowOrder=False,
    )
    # the id depends on what the event is about, not on which read produced it
    again = membership_events(changes.withColumn("_commit_version", changes["_commit_version"] + 10))
    assert sorted(r[0] for r in out.select("event_id").collect()) == sorted(
        r[0] for r in again.select("event_id").collect()
    )
    assert out.select("event_id").distinct().count() == 2


def test_segment_export_rows_recheck_consent_and_need_an_email(spark):
    segments = parse_segments_config(
        {
            "purposes": {"marketing_email": {"requires": ["can_email_marketing"]}, "analytics": {}},
            "segments": [
                {"id": "vip", "version": 1, "purpose": "marketing_email", "condition": "true"},
                {"id": "all", "version": 1, "purpose": "analytics", "condition": "true"},
            ],
        }
    )
    membership = spark.createDataFrame(
        [
            ("vip", "C1", 1, at(0), None, True, "{}", "r"),
            ("vip", "C2", 1, at(0), None, True, "{}", "r"),  # consent withdrawn since
            ("vip", "C3", 1, at(0), at(5), False, "{}", "r"),  # left already
            ("all", "C4", 1, at(1), None, True, "{}", "r"),  # no email on the profile
            ("old", "C1", 1, at(0), None, True, "{}", "r"),  # no longer defined
        ],
        "segment_id STRING, customer_id STRING, definition_version INT, entered_at TIMESTAMP, "
        "exited_at TIMESTAMP, is_member BOOLEAN, qualified_values STRING, run_id STRING",
    )
    profile = spark.createDataFrame(
        [
            ("C1", "ann@x.com", "Ann", True),
            ("C2", "bob@y.com", "Bob", False),
            ("C3", "cat@z.com", "Cat", True),
            ("C4", None, "Dan", True),
        ],
        "customer_id STRING, email STRING, first_name STRING, can_email_marketing BOOLEAN",
    )
    rows, withheld = segment_export_rows(membership, profile, segments)
    assertDataFrameEqual(
        rows,
        spark.createDataFrame(
            [("ann@x.com", "Ann", "C1", "vip", at(0))],
            "email STRING, first_name STRING, customer_id STRING, segment_id STRING, entered_at TIMESTAMP",
        ),
    )
    # vip: 2 open stays - 1 exported = 1 withheld (C2); all: 1 open - 0 exported = 1 (C4)
    assertDataFrameEqual(
        withheld,
        spark.createDataFrame([("vip", 1), ("all", 1)], "segment_id STRING, withheld BIGINT"),
        checkRowOrder=False,
    )


def test_rank_moved_finds_customers_whose_scores_or_cell_changed(spark):
    from cdplake.streaming.incremental import rank_moved

    schema = "customer_id STRING, rfm_r_score INT, rfm_f_score INT, rfm_m_score INT, rfm_cell STRING"
    before = spark.createDataFrame(
        [
            ("same", 5, 5, 5, "champions"),
            ("m_dropped", 3, 3, 5, "loyal"),
            ("cell_only", 2, 2, 2, "at_risk"),
            ("merged_away", 1, 1, 1, "hibernating"),
            ("null_same", None, None, None, None),
        ],
        schema,
    )
    after = spark.createDataFrame(
        [
            ("same", 5, 5, 5, "champions"),
            ("m_dropped", 3, 3, 4, "loyal"),
            ("cell_only", 2, 2, 2, "hibernating"),
            ("first_order", 1, 1, 1, "new"),
            ("null_same", None, None, None, None),
        ],
        schema,
    )
    assertDataFrameEqual(
        rank_moved(before, after),
        spark.createDataFrame(
            [("m_dropped",), ("cell_only",), ("merged_away",), ("first_order",)], "customer_id STRING"
        ),
    )
