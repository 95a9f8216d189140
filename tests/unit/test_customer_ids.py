"""Stable customer ids across runs and the identity change feed, on hand-made components."""

from __future__ import annotations

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.identity import assign_minted_ids, assign_stable_ids, identity_changes, mint_customer_id

MAP_DDL = "id_type STRING, id_value STRING, customer_id STRING"
CHANGES = "change STRING, customer_id STRING, related_id STRING, identifiers BIGINT"


def components(spark, groups):
    """``[[ "email:a", ...], ...]`` -> components rows; the component key is the smallest node."""
    rows = []
    for group in groups:
        for node in group:
            id_type, id_value = node.split(":", 1)
            rows.append((id_type, id_value, node, min(group)))
    return spark.createDataFrame(rows, "id_type STRING, id_value STRING, node STRING, component STRING")


def mint(spark, key):
    return spark.range(1).select(mint_customer_id(F.lit(key))).first()[0]


def ids(df):
    return {r["node"]: r["customer_id"] for r in df.select("node", "customer_id").collect()}


def as_map(df):
    return df.select("id_type", "id_value", "customer_id")


def test_first_run_mints_like_assign_minted_ids(spark):
    comps = components(spark, [["email:a", "user:1"], ["email:b"]])
    assertDataFrameEqual(assign_stable_ids(None)(comps), assign_minted_ids(comps))
    assertDataFrameEqual(
        identity_changes(None, as_map(assign_minted_ids(comps))),
        spark.createDataFrame(
            [("created", mint(spark, "email:a"), None, 2), ("created", mint(spark, "email:b"), None, 1)],
            CHANGES,
        ),
    )


def test_rerun_keeps_every_id_and_reports_no_change(spark):
    comps = components(spark, [["email:a", "user:1"], ["email:b"]])
    previous = as_map(comps.withColumn("customer_id", F.concat(F.lit("cus_old_"), F.col("component"))))
    again = assign_stable_ids(previous)(comps)
    assertDataFrameEqual(as_map(again), previous)
    assert identity_changes(previous, as_map(again)).count() == 0


def test_merge_keeps_the_larger_clusters_id_and_aliases_the_other(spark):
    previous = spark.createDataFrame(
        [
            ("email", "a", "cus_big"),
            ("user", "1", "cus_big"),
            ("phone", "9", "cus_small"),
        ],
        MAP_DDL,
    )
    # a new record links phone 9 to email a: one component; a brand-new identifier joins too
    comps = components(spark, [["email:a", "user:1", "phone:9", "user:2"]])
    merged = assign_stable_ids(previous)(comps)
    assert set(ids(merged).values()) == {"cus_big"}
    assertDataFrameEqual(
        identity_changes(previous, as_map(merged)),
        spark.createDataFrame([("merged", "cus_big", "cus_small", 1)], CHANGES),
    )


def test_merge_of_equal_sizes_keeps_the_smaller_id(spark):
    previous = spark.createDataFrame([("email", "a", "cus_b"), ("email", "z", "cus_a")], MAP_DDL)
    merged = assign_stable_ids(previous)(components(spark, [["email:a", "email:z"]]))
    assert set(ids(merged).values()) == {"cus_a"}


def test_split_leaves_the_id_with_the_larger_part_and_mints_the_rest(spark):
    previous = spark.createDataFrame(
        [("email", "a", "cus_x"), ("user", "1", "cus_x"), ("user", "2", "cus_x")], MAP_DDL
    )
    # email:a was the smallest identifier, the one cus_x might have been minted from; it splits off
    comps = components(spark, [["email:a"], ["user:1", "user:2"]])
    out = ids(assign_stable_ids(previous)(comps))
    split_id = mint(spark, "split:email:a")
    assert out == {"email:a": split_id, "user:1": "cus_x", "user:2": "cus_x"}
    assert split_id != mint(spark, "email:a")
    assertDataFrameEqual(
        identity_changes(
            previous,
            spark.createDataFrame([(k.split(":")[0], k.split(":")[1], v) for k, v in out.items()], MAP_DDL),
        ),
        spark.createDataFrame([("split", split_id, "cus_x", 1)], CHANGES),
    )


def test_new_and_vanished_identifiers(spark):
    previous = spark.createDataFrame([("email", "a", "cus_a"), ("email", "gone", "cus_gone")], MAP_DDL)
    comps = components(spark, [["email:a"], ["email:new", "user:7"]])
    current = as_map(assign_stable_ids(previous)(comps))
    fresh = mint(spark, "email:new")
    assertDataFrameEqual(
        current,
        spark.createDataFrame(
            [("email", "a", "cus_a"), ("email", "new", fresh), ("user", "7", fresh)], MAP_DDL
        ),
    )
    assertDataFrameEqual(
        identity_changes(previous, current),
        spark.createDataFrame([("created", fresh, None, 2), ("removed", "cus_gone", None, 1)], CHANGES),
    )
