"""Segment membership history across runs: enter, stay, exit, re-enter; and its change data feed."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.segments import merge_membership, upsert_summary

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T1 = dt.datetime(2026, 11, 1, tzinfo=UTC)
T2 = dt.datetime(2026, 11, 2, tzinfo=UTC)
T3 = dt.datetime(2026, 11, 3, tzinfo=UTC)
MEMBERS_DDL = "segment_id STRING, customer_id STRING, definition_version INT, qualified_values STRING"
TABLE_DDL = (
    "segment_id STRING, customer_id STRING, definition_version INT, entered_at TIMESTAMP, "
    "exited_at TIMESTAMP, is_member BOOLEAN, qualified_values STRING, run_id STRING"
)


def members(spark, *rows):
    return spark.createDataFrame([(s, c, 1, f'{{"run":"{q}"}}') for s, c, q in rows], MEMBERS_DDL)


def test_membership_enter_stay_exit_reenter(spark, lake_env):
    path = lake_env.paths.table("gold", "segment_membership")
    # run 1: A and B enter s1, A enters s2
    merge_membership(
        spark,
        path,
        members(spark, ("s1", "A", "r1"), ("s1", "B", "r1"), ("s2", "A", "r1")),
        ["s1", "s2"],
        "r1",
        T1,
    )
    # run 2 evaluates s1 only: A stays, B exits, C enters; A's open s2 stay is not touched
    merge_membership(spark, path, members(spark, ("s1", "A", "r2"), ("s1", "C", "r2")), ["s1"], "r2", T2)
    # run 3: B re-enters s1 (a new row), C exits; s2 has nobody now, so A exits it
    merge_membership(
        spark, path, members(spark, ("s1", "A", "r3"), ("s1", "B", "r3")), ["s1", "s2"], "r3", T3
    )

    expected = spark.createDataFrame(
        [
            # A stayed in s1 through all runs: still the run-1 row, untouched
            ("s1", "A", 1, T1, None, True, '{"run":"r1"}', "r1"),
            ("s1", "B", 1, T1, T2, False, '{"run":"r1"}', "r2"),
            ("s1", "C", 1, T2, T3, False, '{"run":"r2"}', "r3"),
            ("s1", "B", 1, T3, None, True, '{"run":"r3"}', "r3"),
            ("s2", "A", 1, T1, T3, False, '{"run":"r1"}', "r3"),
        ],
        TABLE_DDL,
    )
    table = spark.read.format("delta").load(path)
    assertDataFrameEqual(table, expected)

    props = spark.sql(f"SHOW TBLPROPERTIES delta.`{path}`").where(
        F.col("key") == "delta.enableChangeDataFeed"
    )
    assert [r["value"] for r in props.collect()] == ["true"]

    changes = (
        spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", 0)
        .load(path)
        .select("_commit_version", "_change_type", "segment_id", "customer_id", "is_member", "exited_at")
    )
    # version 0 creates the empty table; each run is one MERGE commit after it
    assertDataFrameEqual(
        changes,
        spark.createDataFrame(
            [
                (1, "insert", "s1", "A", True, None),
                (1, "insert", "s1", "B", True, None),
                (1, "insert", "s2", "A", True, None),
                (2, "update_preimage", "s1", "B", True, None),
                (2, "update_postimage", "s1", "B", False, T2),
                (2, "insert", "s1", "C", True, None),
                (3, "update_preimage", "s1", "C", True, None),
                (3, "update_postimage", "s1", "C", False, T3),
                (3, "insert", "s1", "B", True, None),
                (3, "update_preimage", "s2", "A", True, None),
                (3, "update_postimage", "s2", "A", False, T3),
            ],
            "_commit_version BIGINT, _change_type STRING, segment_id STRING, customer_id STRING, "
            "is_member BOOLEAN, exited_at TIMESTAMP",
        ),
    )

    # Replaying run 3 changes nothing: same table, and no change rows even if Delta commits.
    before = last_version(spark, path)
    merge_membership(
        spark, path, members(spark, ("s1", "A", "r3"), ("s1", "B", "r3")), ["s1", "s2"], "r3", T3
    )
    assertDataFrameEqual(spark.read.format("delta").load(path), expected)
    after = last_version(spark, path)
    replayed = (
        []
        if after == before
        else spark.read.format("delta")
        .option("readChangeFeed", "true")
        .option("startingVersion", before + 1)
        .load(path)
        .collect()
    )
    assert replayed == []


def last_version(spark, path: str) -> int:
    return spark.sql(f"DESCRIBE HISTORY delta.`{path}`").agg(F.max("version")).first()[0]


def test_version_bump_closes_old_stays(spark, lake_env):
    path = lake_env.paths.table("gold", "segment_membership")
    merge_membership(spark, path, members(spark, ("s1", "A", "v1")), ["s1"], "r1", T1)
    bumped = spark.createDataFrame([("s1", "A", 2, "{}")], MEMBERS_DDL)
    merge_membership(spark, path, bumped, ["s1"], "r2", T2)
    assertDataFrameEqual(
        spark.read.format("delta").load(path),
        spark.createDataFrame(
            [
                ("s1", "A", 1, T1, T2, False, '{"run":"v1"}', "r2"),
                ("s1", "A", 2, T2, None, True, "{}", "r2"),
            ],
            TABLE_DDL,
        ),
    )


def test_summary_upsert_replaces_a_replayed_run(spark, lake_env):
    path = lake_env.paths.table("gold", "segment_summary")
    ddl = "run_id STRING, segment_id STRING, definition_version INT, size BIGINT, excluded_no_consent BIGINT, computed_at TIMESTAMP"
    upsert_summary(spark, path, spark.createDataFrame([("r1", "s1", 1, 5, 2, T1)], ddl))
    upsert_summary(spark, path, spark.createDataFrame([("r2", "s1", 1, 6, 1, T2)], ddl))
    upsert_summary(spark, path, spark.createDataFrame([("r2", "s1", 1, 7, 0, T2)], ddl))  # replay of r2
    assertDataFrameEqual(
        spark.read.format("delta").load(path),
        spark.createDataFrame([("r1", "s1", 1, 5, 2, T1), ("r2", "s1", 1, 7, 0, T2)], ddl),
    )
