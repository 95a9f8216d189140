"""Declared traits: the YAML loader's validation and the compiler to Spark aggregations."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from cdplake.config import ConfigError, FeaturesConfig, Trait, load_features_config
from cdplake.config.features import parse_features_config
from cdplake.features import FeatureDefinitionError, aggregate_traits, customer_features, fill_traits

CONF = Path(__file__).resolve().parents[2] / "conf"
UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 11, 2, tzinfo=UTC)
ROWS_DDL = "customer_id STRING, ts TIMESTAMP, kind STRING, amount DOUBLE"


def ts(month: int, day: int, hour: int = 0) -> dt.datetime:
    return dt.datetime(2026, month, day, hour, tzinfo=UTC)


def trait(name: str, **kw) -> dict:
    return {"name": name, "description": name, **kw}


def test_repo_features_yaml_loads():
    cfg = load_features_config(CONF)
    names = [t.name for t in cfg.traits]
    assert len(names) == len(set(names)) > 20
    assert {"email_open_rate", "sessions_30d", "cart_abandonments_30d", "browsing_intensity"} <= set(names)
    assert cfg.rfm.cells[0].name == "champions"
    assert cfg.email.machine_open_user_agents == (r"^Mozilla/5\.0$",)


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"traits": [trait("a", source="orders", aggregate="count")] * 2}, "declared more than once"),
        ({"traits": [trait("a", source="crm", aggregate="count")]}, "source must be one of"),
        (
            {"traits": [trait("a", source="orders", aggregate="median", column="x")]},
            "aggregate must be one of",
        ),
        ({"traits": [trait("a", source="orders", aggregate="sum")]}, "needs a column"),
        (
            {"traits": [trait("a", source="orders", aggregate="decayed_sum", column="x")]},
            "needs half_life_days",
        ),
        ({"traits": [trait("a", source="orders", aggregate="count", half_life_days=3)]}, "decayed_sum only"),
        ({"traits": [trait("a", source="orders", aggregate="count", window_days=0)]}, "window_days must be"),
        ({"traits": [trait("a", expression="x + 1", source="orders")]}, "takes no"),
        ({"traits": [{"name": "a", "source": "orders", "aggregate": "count"}]}, "needs a description"),
        ({"traits": [trait("Bad", source="orders", aggregate="count")]}, "lower_snake_case"),
        ({"settings": {"email": {"machine_open_user_agents": ["("]}}}, "not a valid regex"),
        ({"settings": {"rfm": {"cells": [{"name": "x", "r": [4, 2]}]}}}, "range"),
        ({"settings": {"rfm": {"windows": [30], "score_window_days": 90}}}, "must be one of windows"),
        ({"settings": {"clv": {"prior_alive": 1}}}, "strictly between"),
        ({"settings": {"colour": {}}}, "unknown key"),
    ],
)
def test_features_config_validation(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_features_config(raw)


def test_aggregates_windows_filters_and_expressions(spark):
    rows = spark.createDataFrame(
        [
            ("a", ts(11, 1), "x", 10.0),  # 1 day old
            ("a", ts(10, 26), "x", 4.0),  # 7 days old: on the open bound of a 7-day window
            ("a", ts(10, 5), "y", 100.0),  # 28 days old
            ("a", ts(11, 3), "x", 1000.0),  # after as_of: never counted
            ("b", ts(10, 30), "y", 2.0),  # 3 days old
        ],
        ROWS_DDL,
    )
    traits = parse_features_config(
        {
            "traits": [
                trait("x_7d", source="orders", aggregate="count", filter="kind = 'x'", window_days=7),
                trait("amount_all", source="orders", aggregate="sum", column="amount"),
                trait("kinds", source="orders", aggregate="count_distinct", column="kind"),
                trait("avg_x", source="orders", aggregate="avg", column="amount", filter="kind = 'x'"),
                trait("last_ts", source="orders", aggregate="max", column="ts"),
                trait("decayed", source="orders", aggregate="decayed_sum", column="amount", half_life_days=7),
                trait("per_kind", expression="amount_all / kinds"),
                trait("views", source="events", aggregate="count"),  # source absent: 0
                trait("view_total", source="events", aggregate="sum", column="amount"),  # absent: null
            ]
        }
    ).traits
    parts = aggregate_traits({"orders": rows}, traits, AS_OF)
    base = spark.createDataFrame([("a",), ("b",), ("c",)], "customer_id STRING")
    for part in parts:
        base = base.join(part, "customer_id", "left")
    got = fill_traits(base, traits)
    expected = spark.createDataFrame(
        [
            (
                "a",
                1,  # x_7d: only the 11-01 row; 10-26 00:00 is exactly 7 days old, outside
                114.0,  # amount_all: 10 + 4 + 100
                2,  # kinds: x, y
                7.0,  # avg_x: (10 + 4) / 2
                ts(11, 1),
                # decayed: 10 * 0.5^(1/7) + 4 * 0.5^(7/7) + 100 * 0.5^(28/7) = 9.05724 + 2 + 6.25
                17.30724,
                57.0,  # per_kind: 114 / 2
                0,
                None,
            ),
            # decayed: 2 * 0.5^(3/7) = 1.48599
            ("b", 0, 2.0, 1, None, ts(10, 30), 1.48599, 2.0, 0, None),
            # no rows at all: counts and decayed sums 0, the rest null
            ("c", 0, None, 0, None, None, 0.0, None, 0, None),
        ],
        "customer_id STRING, x_7d BIGINT, amount_all DOUBLE, kinds BIGINT, avg_x DOUBLE, "
        "last_ts TIMESTAMP, decayed DOUBLE, per_kind DOUBLE, views BIGINT, view_total DOUBLE",
    )
    assertDataFrameEqual(got, expected, rtol=1e-5)


def test_bad_trait_sql_names_the_trait(spark):
    rows = spark.createDataFrame([], ROWS_DDL)
    bad_col = Trait("t1", "d", source="orders", aggregate="sum", column="amout")
    with pytest.raises(FeatureDefinitionError, match="trait 't1' over orders: column 'amout'"):
        aggregate_traits({"orders": rows}, [bad_col], AS_OF)
    bad_filter = Trait("t2", "d", source="orders", aggregate="count", filter="kind ==== 'x'")
    with pytest.raises(FeatureDefinitionError, match="trait 't2'"):
        aggregate_traits({"orders": rows}, [bad_filter], AS_OF)
    bad_expr = Trait("t3", "d", expression="no_such_column * 2")
    with pytest.raises(FeatureDefinitionError, match="trait 't3': expression"):
        fill_traits(spark.createDataFrame([("a",)], "customer_id STRING"), [bad_expr])


def test_trait_cannot_shadow_a_built_in_column(spark):
    record_customer = spark.createDataFrame(
        [("orders", "o1", "a")], "source STRING, record_key STRING, customer_id STRING"
    )
    config = FeaturesConfig(traits=(Trait("rfm_cell", "d", source="orders", aggregate="count"),))
    with pytest.raises(FeatureDefinitionError, match=r"\['rfm_cell'\] reuse the name"):
        customer_features({}, record_customer, AS_OF, config=config)
