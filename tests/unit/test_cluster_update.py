"""update_clusters: re-clustering only what a batch of records can change."""

from __future__ import annotations

import pytest
from pyspark.testing import assertDataFrameEqual

from cdplake.identity.cluster_update import ClusterScopeNotClosed, update_clusters

CLUSTER_DDL = "source STRING, record_key STRING, cluster_id STRING"
RECORD_DDL = "source STRING, record_key STRING"
PAIR_DDL = (
    "source_l STRING, record_key_l STRING, source_r STRING, record_key_r STRING, match_probability DOUBLE"
)

# The last clustering, at 0.9: {a1, a2} (0.95), {a3}, {a4, a5} (0.97), {a6}, {a7, a8} (0.99).
PREVIOUS = [
    ("a1", "p:a1"),
    ("a2", "p:a1"),
    ("a3", "p:a3"),
    ("a4", "p:a4"),
    ("a5", "p:a4"),
    ("a6", "p:a6"),
    ("a7", "p:a7"),
    ("a8", "p:a7"),
]
# Now: n1 is new and matches a2 (0.93) and a3 (0.96); a5 changed and its pair with a4 fell to
# 0.5; a6 is gone (its record and pairs with it).
PAIRS_NOW = [
    ("a1", "a2", 0.95),
    ("a7", "a8", 0.99),
    ("a4", "a5", 0.5),
    ("a1", "a3", 0.2),
    ("a2", "n1", 0.93),
    ("a3", "n1", 0.96),
]
RECORDS_NOW = ["a1", "a2", "a3", "a4", "a5", "a7", "a8", "n1"]
TOUCHED = ["n1", "a5", "a6"]


def frame(spark, rows, ddl, width):
    return spark.createDataFrame([("p", *r) if width > 1 else ("p", r) for r in rows], ddl)


def pairs(spark):
    return spark.createDataFrame([("p", a, "p", b, prob) for a, b, prob in PAIRS_NOW], PAIR_DDL)


def test_a_batch_reclusters_only_the_clusters_it_touches(spark):
    previous = frame(spark, PREVIOUS, CLUSTER_DDL, 2)
    update = update_clusters(
        previous,
        frame(spark, RECORDS_NOW, RECORD_DDL, 1),
        pairs(spark),
        frame(spark, TOUCHED, RECORD_DDL, 1),
        0.9,
    )
    # Round 1 adds the old clusters of n1, a5, a6 (a4) and n1's partners (a2, a3); round 2
    # adds a2's old cluster (a1); round 3 adds nothing. {a7, a8} stays out.
    assert update.rounds == 3
    assertDataFrameEqual(
        update.scope, frame(spark, ["a1", "a2", "a3", "a4", "a5", "a6", "n1"], RECORD_DDL, 1)
    )
    # n1 joins {a1, a2} and {a3} (smallest id: a1); {a4, a5} splits; a6 has no row any more.
    want = [("a1", "p:a1"), ("a2", "p:a1"), ("a3", "p:a1"), ("n1", "p:a1"), ("a4", "p:a4"), ("a5", "p:a5")]
    assertDataFrameEqual(update.clusters, frame(spark, want, CLUSTER_DDL, 2))
    # Replacing the scope's old rows gives the clustering of every record now.
    applied = previous.join(update.scope, ["source", "record_key"], "left_anti").unionByName(update.clusters)
    assertDataFrameEqual(applied, frame(spark, [*want, ("a7", "p:a7"), ("a8", "p:a7")], CLUSTER_DDL, 2))


def test_the_over_merge_guard_applies_inside_the_scope_and_the_search_is_bounded(spark):
    previous = frame(spark, PREVIOUS, CLUSTER_DDL, 2)
    args = (
        previous,
        frame(spark, RECORDS_NOW, RECORD_DDL, 1),
        pairs(spark),
        frame(spark, TOUCHED, RECORD_DDL, 1),
        0.9,
    )
    # {a1, a2, a3, n1} has 4 records, over 3: at 0.94 it splits into a1-a2 (0.95) and
    # a3-n1 (0.96), "1:" naming the first stricter cut; the others fit and keep their ids.
    update = update_clusters(*args, max_cluster_size=3, split_thresholds=(0.94,))
    want = [
        ("a1", "1:p:a1"),
        ("a2", "1:p:a1"),
        ("a3", "1:p:a3"),
        ("n1", "1:p:a3"),
        ("a4", "p:a4"),
        ("a5", "p:a5"),
    ]
    assertDataFrameEqual(update.clusters, frame(spark, want, CLUSTER_DDL, 2))
    with pytest.raises(ClusterScopeNotClosed, match="after 2 rounds"):
        update_clusters(*args, max_rounds=2)
