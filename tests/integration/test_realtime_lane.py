"""The real-time lane on real Delta tables: browsing_now entered and left between gold cycles.

The profile, customer map and membership of the session's ``two_wave_stream`` lake (as cycle
2 left them) are copied to a fresh lake; hand-written signal rows then give one consenting
and one non-consenting customer views, and :func:`refresh_realtime_segments` runs at two
moments. Only browsing_now stays may change, and only for those customers.
"""

from __future__ import annotations

import datetime as dt
import json

import pytest
from lake_conf import STREAM_AS_OF
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.config import load_env
from cdplake.config.segments import load_segments_config
from cdplake.config.streaming import SignalSettings
from cdplake.features.realtime import SIGNALS_DDL, current_window_end
from cdplake.segments.membership import MEMBERSHIP_DDL
from cdplake.streaming.realtime_lane import RealtimeRefresh, RefreshMemo, refresh_realtime_segments

pytestmark = pytest.mark.integration

SETTINGS = SignalSettings("1 hour", "5 minutes", "10 minutes")
UTC = dt.timezone.utc


def copy_gold(spark, ref, tmp_path):
    """A fresh lake holding the stream lake's profile, customer map and membership."""
    env = load_env(
        "local", conf_dir=ref.env.conf_dir, environ={"CDPLAKE__STORAGE__ROOT": str(tmp_path / "lake")}
    )
    profile = ref.gold(spark, "customer_profile")
    customer_map = spark.read.format("delta").load(ref.env.paths.table("identity", "customer_map"))
    membership = ref.gold(spark, "segment_membership")
    for df, layer, name in (
        (profile, "gold", "customer_profile"),
        (customer_map, "identity", "customer_map"),
        (membership, "gold", "segment_membership"),
    ):
        df.write.format("delta").save(env.paths.table(layer, name))
    return env, profile, customer_map, membership


def test_browsing_now_follows_the_signals_for_known_consenting_customers_only(
    spark, two_wave_stream, tmp_path
):
    env, profile, customer_map, membership = copy_gold(spark, two_wave_stream, tmp_path)
    segments = load_segments_config(env.conf_dir)

    # One visitor id of a customer who may get marketing email, one of a customer who may not,
    # neither in browsing_now yet.
    open_now = membership.where("is_member AND segment_id = 'browsing_now'").select("customer_id")
    ids = customer_map.join(
        profile.select("customer_id", "can_email_marketing", "email_opens_30d"), "customer_id"
    )
    ids = ids.join(open_now, "customer_id", "left_anti").orderBy("customer_id", "id_type", "id_value")
    yes = ids.where("can_email_marketing").first()
    no = ids.where("NOT can_email_marketing").first()
    assert yes is not None and no is not None, "the demo lake has both kinds of customer"

    # STREAM_AS_OF is on a slide boundary, so its current window is [as_of - 55 min, as_of + 5 min).
    end = current_window_end(STREAM_AS_OF, 300)
    assert end == STREAM_AS_OF + dt.timedelta(minutes=5)
    start = end - dt.timedelta(hours=1)
    older_end = end - dt.timedelta(minutes=5)
    signals = spark.createDataFrame(
        [
            (yes["id_type"], yes["id_value"], start, end, 3, STREAM_AS_OF),
            # the previous window: 10 views that must not count at STREAM_AS_OF
            (yes["id_type"], yes["id_value"], start - dt.timedelta(minutes=5), older_end, 10, STREAM_AS_OF),
            (no["id_type"], no["id_value"], start, end, 5, STREAM_AS_OF),
        ],
        SIGNALS_DDL,
    )
    signals.write.format("delta").save(env.paths.table("gold", "realtime_signals"))
    path = env.paths.table("gold", "segment_membership")

    first = refresh_realtime_segments(spark, env, segments, SETTINGS, STREAM_AS_OF, "rt_1")
    # both customers are looked at; only the consenting one enters (3 views >= 3)
    assert first == RealtimeRefresh(scope=2, opened=1, closed=0)
    qualified = json.dumps(
        {"product_views_1h": 3, "email_opens_30d": yes["email_opens_30d"]}, separators=(",", ":")
    )
    entered = spark.createDataFrame(
        [("browsing_now", yes["customer_id"], 1, STREAM_AS_OF, None, True, qualified, "rt_1")], MEMBERSHIP_DDL
    )
    after_first = spark.read.format("delta").load(path)
    assertDataFrameEqual(after_first, membership.unionByName(entered), checkRowOrder=False)

    # Three hours on no window holds a view: the stay closes; nobody else is touched.
    later = STREAM_AS_OF + dt.timedelta(hours=3)
    second = refresh_realtime_segments(spark, env, segments, SETTINGS, later, "rt_2")
    assert second == RealtimeRefresh(scope=1, opened=0, closed=1)
    closed = entered.withColumn("exited_at", F.lit(later).cast("timestamp")).withColumns(
        {"is_member": F.lit(False), "run_id": F.lit("rt_2")}
    )
    assertDataFrameEqual(
        spark.read.format("delta").load(path), membership.unionByName(closed), checkRowOrder=False
    )

    # Nothing left to look at: no table is written.
    version = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").agg(F.max("version")).first()[0]
    assert refresh_realtime_segments(spark, env, segments, SETTINGS, later, "rt_3") == RealtimeRefresh()
    assert spark.sql(f"DESCRIBE HISTORY delta.`{path}`").agg(F.max("version")).first()[0] == version


def test_a_refresh_whose_inputs_have_not_changed_is_skipped(spark, two_wave_stream, tmp_path):
    env, profile, customer_map, _ = copy_gold(spark, two_wave_stream, tmp_path)
    segments = load_segments_config(env.conf_dir)
    visitor = (
        customer_map.join(profile.where("can_email_marketing"), "customer_id").orderBy("customer_id").first()
    )
    end = current_window_end(STREAM_AS_OF, 300)
    signals_path = env.paths.table("gold", "realtime_signals")
    spark.createDataFrame(
        [(visitor["id_type"], visitor["id_value"], end - dt.timedelta(hours=1), end, 3, STREAM_AS_OF)],
        SIGNALS_DDL,
    ).write.format("delta").save(signals_path)
    memo = RefreshMemo()

    def refresh(at: dt.datetime, run_id: str) -> RealtimeRefresh:
        return refresh_realtime_segments(spark, env, segments, SETTINGS, at, run_id, memo=memo)

    first = refresh(STREAM_AS_OF, "m_1")
    assert first.opened == 1 and not first.skipped
    # A minute on, same window, no table moved (its own write is in the memo): skipped.
    assert refresh(STREAM_AS_OF + dt.timedelta(minutes=1), "m_2") == RealtimeRefresh(
        first.scope, skipped=True
    )
    # A new version of a table it reads: evaluated again, nothing to change.
    spark.createDataFrame(
        [("anonymous_id", "nobody", end - dt.timedelta(hours=1), end, 1, STREAM_AS_OF)], SIGNALS_DDL
    ).write.format("delta").mode("append").save(signals_path)
    assert refresh(STREAM_AS_OF + dt.timedelta(minutes=2), "m_3") == RealtimeRefresh(first.scope, 0, 0)
    assert refresh(STREAM_AS_OF + dt.timedelta(minutes=3), "m_4").skipped
    # The window slides (past its end): evaluated again.
    assert not refresh(end + dt.timedelta(seconds=1), "m_5").skipped


def test_nothing_to_do_before_gold_exists(spark, tmp_path):
    from pathlib import Path

    conf = Path(__file__).resolve().parents[2] / "conf"
    env = load_env("local", conf_dir=conf, environ={"CDPLAKE__STORAGE__ROOT": str(tmp_path / "lake")})
    out = refresh_realtime_segments(spark, env, load_segments_config(conf), SETTINGS, STREAM_AS_OF, "rt")
    assert out == RealtimeRefresh()
    assert not (tmp_path / "lake" / "delta" / "gold" / "segment_membership").exists()
