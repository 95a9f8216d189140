"""The scope of an incremental identity run: what changed, and everything it can link to."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.config import ConfigError
from cdplake.config.identity import IncrementalSettings, parse_identity_config
from cdplake.identity.graph import node_key
from cdplake.identity.incremental import (
    ScopeNotConverged,
    changed_pair_records,
    changed_records,
    resolution_scope,
)

IDS = "source STRING, record_key STRING, id_type STRING, id_value STRING"
RECORDS = "source STRING, record_key STRING"
PAIRS = "source_l STRING, record_key_l STRING, source_r STRING, record_key_r STRING, match_probability DOUBLE"


def test_changed_records_are_new_gone_or_re_identified(spark):
    before = spark.createDataFrame(
        [("crm", "c1", "email", "a@x"), ("crm", "c2", "email", "b@x"), ("orders", "o1", "email", "a@x")], IDS
    )
    now = spark.createDataFrame(
        [("crm", "c1", "email", "a@x"), ("crm", "c2", "email", "b@new"), ("orders", "o2", "email", "c@x")],
        IDS,
    )
    assertDataFrameEqual(
        changed_records(now, before),
        spark.createDataFrame([("crm", "c2"), ("orders", "o1"), ("orders", "o2")], RECORDS),
    )


def test_changed_pairs_name_both_records_of_new_gone_or_reweighted_pairs(spark):
    before = spark.createDataFrame([("s", "a", "s", "b", 0.99), ("s", "c", "s", "d", 0.97)], PAIRS)
    now = spark.createDataFrame([("s", "a", "s", "b", 0.99), ("s", "c", "s", "d", 0.98)], PAIRS)
    assertDataFrameEqual(
        changed_pair_records(now, before), spark.createDataFrame([("s", "c"), ("s", "d")], RECORDS)
    )


def test_scope_follows_customers_shared_values_pairs_and_must_links(spark):
    # r6 is new and shares email a with customer C1 (r1, r2); r2's phone p is also on r3
    # (customer C2: the phone was refused by a cap, yet a cap is decided per component, so C2
    # is in scope); r3 is scored with r4 (C3); a reviewer must-linked C3's email z with C4's
    # email y (r5). r7 shares nothing.
    linkable = spark.createDataFrame(
        [
            ("s", "r1", "email", "a"),
            ("s", "r2", "email", "a"),
            ("s", "r2", "phone", "p"),
            ("s", "r3", "phone", "p"),
            ("s", "r4", "email", "z"),
            ("s", "r5", "email", "y"),
            ("s", "r6", "email", "a"),
            ("s", "r7", "email", "w"),
        ],
        IDS,
    )
    previous = spark.createDataFrame(
        [
            ("s", "r1", "C1"),
            ("s", "r2", "C1"),
            ("s", "r3", "C2"),
            ("s", "r4", "C3"),
            ("s", "r5", "C4"),
            ("s", "r7", "C5"),
        ],
        "source STRING, record_key STRING, customer_id STRING",
    )
    pairs = spark.createDataFrame([("s", "r3", "s", "r4", 0.99)], PAIRS)
    must = spark.range(1).select(
        node_key(F.lit("email"), F.lit("y")).alias("node_a"),
        node_key(F.lit("email"), F.lit("z")).alias("node_b"),
    )
    seeds = spark.createDataFrame([("s", "r6")], RECORDS)

    scope = resolution_scope(seeds, linkable, previous, pairs=pairs, must_link=must)

    assertDataFrameEqual(scope, spark.createDataFrame([("s", f"r{i}") for i in range(1, 7)], RECORDS))
    without_links = resolution_scope(seeds, linkable, previous)
    assertDataFrameEqual(
        without_links, spark.createDataFrame([("s", f"r{i}") for i in (1, 2, 3, 6)], RECORDS)
    )
    with pytest.raises(ScopeNotConverged, match="after 1 rounds"):
        resolution_scope(seeds, linkable, previous, pairs=pairs, must_link=must, max_rounds=1)


def test_incremental_settings_are_validated():
    assert parse_identity_config({}).incremental == IncrementalSettings(0.5, 10, 0)
    parsed = parse_identity_config(
        {"incremental": {"max_scope_fraction": 1, "max_rounds": 3, "min_records": 9}}
    )
    assert parsed.incremental == IncrementalSettings(1.0, 3, 9)
    with pytest.raises(ConfigError, match="min_records must be a whole number"):
        parse_identity_config({"incremental": {"min_records": -1}})
    with pytest.raises(ConfigError, match="max_scope_fraction must be a number from 0 to 1"):
        parse_identity_config({"incremental": {"max_scope_fraction": 2}})
    with pytest.raises(ConfigError, match="unknown key"):
        parse_identity_config({"incremental": {"rounds": 3}})
