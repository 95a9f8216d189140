"""update_clusters: re-clustering only what a batch of records can change."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.identity.cluster_update import ClusterScopeNotClosed, update_clusters

CLUSTER_DDL = "source STRING, record_key STRING, cluster_id STRING"
WITH_COMPONENT_DDL = CLUSTER_DDL + ", component_id STRING"
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


# The guarded test's clusters after the batch: record, cluster, component.
GUARDED = [
    ("a1", "1:p:a1", "p:a1"),
    ("a2", "1:p:a1", "p:a1"),
    ("a3", "1:p:a3", "p:a1"),
    ("n1", "1:p:a3", "p:a1"),
    ("a4", "p:a4", "p:a4"),
    ("a5", "p:a5", "p:a5"),
]


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
    # One round: n1, a5, a6, n1's links a2 and a3, and the old clusters of those (a1, a4);
    # no link leaves that scope. {a7, a8} stays out.
    assert update.rounds == 1
    assertDataFrameEqual(
        update.scope, frame(spark, ["a1", "a2", "a3", "a4", "a5", "a6", "n1"], RECORD_DDL, 1)
    )
    # n1 joins {a1, a2} and {a3} (smallest id: a1); {a4, a5} splits; a6 has no row any more.
    want = [("a1", "p:a1"), ("a2", "p:a1"), ("a3", "p:a1"), ("n1", "p:a1"), ("a4", "p:a4"), ("a5", "p:a5")]
    assertDataFrameEqual(update.clusters.drop("component_id"), frame(spark, want, CLUSTER_DDL, 2))
    # Replacing the scope's old rows gives the clustering of every record now.
    applied = previous.join(update.scope, ["source", "record_key"], "left_anti").unionByName(
        update.clusters.drop("component_id")
    )
    assertDataFrameEqual(applied, frame(spark, [*want, ("a7", "p:a7"), ("a8", "p:a7")], CLUSTER_DDL, 2))


def test_the_over_merge_guard_applies_inside_the_scope_and_split_clusters_are_crossed(spark):
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
    # component_id keeps the component each part came from.
    update = update_clusters(*args, max_cluster_size=3, split_thresholds=(0.94,))
    want = GUARDED
    assertDataFrameEqual(update.clusters, frame(spark, want, WITH_COMPONENT_DDL, 3))

    # A cluster the guard split before: a7-a9 (0.999) in one part, a10, linked to a9 at 0.99,
    # in another. Touching a7 reaches a9 in round 1 and a10, across the split, in round 2.
    split_before = frame(spark, [("a7", "1:p:a7"), ("a9", "1:p:a7"), ("a10", "1:p:a10")], CLUSTER_DDL, 2)
    chain = spark.createDataFrame([("p", "a7", "p", "a9", 0.999), ("p", "a9", "p", "a10", 0.99)], PAIR_DDL)
    keys, touched = frame(spark, ["a7", "a9", "a10"], RECORD_DDL, 1), frame(spark, ["a7"], RECORD_DDL, 1)
    update = update_clusters(split_before, keys, chain, touched, 0.9)
    assert update.rounds == 2
    joined = frame(spark, [(k, "p:a10", "p:a10") for k in ("a7", "a9", "a10")], WITH_COMPONENT_DDL, 3)
    assertDataFrameEqual(update.clusters, joined)
    with pytest.raises(ClusterScopeNotClosed, match="after 1 rounds"):
        update_clusters(split_before, keys, chain, touched, 0.9, max_rounds=1)
    # Knowing the parts' component (p:a10), one round reaches all of it.
    with_component = split_before.withColumn("component_id", F.lit("p:a10"))
    update = update_clusters(with_component, keys, chain, touched, 0.9, max_rounds=1)
    assert update.rounds == 1
    assertDataFrameEqual(update.clusters, joined)


def with_components(frame_):
    """A clustering the guard split nothing of: each cluster is its own component."""
    return frame_.withColumn("component_id", F.col("cluster_id"))


@pytest.mark.parametrize(("max_size", "thresholds"), [(0, ()), (3, (0.94,))])
def test_the_driver_clusters_a_small_scope_as_spark_does(spark, max_size, thresholds):
    args = (
        with_components(frame(spark, PREVIOUS, CLUSTER_DDL, 2)),
        frame(spark, RECORDS_NOW, RECORD_DDL, 1),
        pairs(spark),
        frame(spark, TOUCHED, RECORD_DDL, 1),
        0.9,
    )
    guard = {"max_cluster_size": max_size, "split_thresholds": thresholds}
    on_spark = update_clusters(*args, **guard)
    on_driver = update_clusters(*args, **guard, driver_max_records=100)
    assert (on_spark.engine, on_driver.engine) == ("spark", "driver")
    scope = frame(spark, ["a1", "a2", "a3", "a4", "a5", "a6", "n1"], RECORD_DDL, 1)
    assertDataFrameEqual(on_driver.scope, scope)
    assertDataFrameEqual(on_spark.scope, scope)
    if max_size:  # the first test's guarded rows
        want = GUARDED
    else:
        want = [(k, c, c) for k, c in [("a1", "p:a1"), ("a2", "p:a1"), ("a3", "p:a1"), ("n1", "p:a1")]]
        want += [("a4", "p:a4", "p:a4"), ("a5", "p:a5", "p:a5")]
    assertDataFrameEqual(on_driver.clusters, frame(spark, want, WITH_COMPONENT_DDL, 3))
    assertDataFrameEqual(on_spark.clusters, on_driver.clusters)


def test_a_scope_over_the_driver_cap_is_clustered_on_spark(spark):
    previous = with_components(frame(spark, PREVIOUS, CLUSTER_DDL, 2))
    args = (
        previous,
        frame(spark, RECORDS_NOW, RECORD_DDL, 1),
        pairs(spark),
        frame(spark, TOUCHED, RECORD_DDL, 1),
    )
    # Three touched records fit a cap of 3, their links too, but the scope has 7 records.
    capped = update_clusters(*args, 0.9, driver_max_records=3)
    assert capped.engine == "spark"
    assertDataFrameEqual(capped.clusters, update_clusters(*args, 0.9, driver_max_records=7).clusters)
    # Without component_id the scope may take rounds the driver path does not do.
    assert update_clusters(*args, 0.9, driver_max_records=100).engine == "driver"
    assert (
        update_clusters(frame(spark, PREVIOUS, CLUSTER_DDL, 2), *args[1:], 0.9, driver_max_records=100).engine
        == "spark"
    )


def test_driver_and_spark_agree_on_a_random_graph_with_a_guard(spark):
    import random

    rng = random.Random(7)
    keys = [f"r{i:03d}" for i in range(120)]
    chosen = {tuple(sorted(rng.sample(keys, 2))) for _ in range(150)}
    probs = [0.5, 0.92, 0.95, 0.995, 0.9995]
    all_pairs = [(a, b, rng.choice(probs)) for a, b in sorted(chosen)]
    # Before: the records r000-r099 and the pairs among them, clustered by Spark in full.
    old_keys = keys[:100]
    old_pairs = [p for p in all_pairs if p[0] in old_keys and p[1] in old_keys]
    guard = {"max_cluster_size": 4, "split_thresholds": (0.99, 0.999)}
    old_frame = frame(spark, old_keys, RECORD_DDL, 1)
    before = update_clusters(
        old_frame.limit(0).withColumn("cluster_id", F.lit(None).cast("string")),
        old_frame,
        spark.createDataFrame([("p", a, "p", b, q) for a, b, q in old_pairs], PAIR_DDL),
        old_frame,
        0.9,
        **guard,
    ).clusters
    # Now: r100-r119 arrive with their pairs and r005 is gone.
    now_keys = [k for k in keys if k != "r005"]
    now_pairs = spark.createDataFrame(
        [("p", a, "p", b, q) for a, b, q in all_pairs if "r005" not in (a, b)], PAIR_DDL
    )
    args = (
        before,
        frame(spark, now_keys, RECORD_DDL, 1),
        now_pairs,
        frame(spark, [*keys[100:], "r005"], RECORD_DDL, 1),
        0.9,
    )
    on_spark = update_clusters(*args, **guard)
    on_driver = update_clusters(*args, **guard, driver_max_records=1000)
    assert on_driver.engine == "driver"
    assertDataFrameEqual(on_driver.scope, on_spark.scope)
    assertDataFrameEqual(on_driver.clusters, on_spark.clusters)
    # And both equal clustering every record now from scratch.
    now_frame = frame(spark, now_keys, RECORD_DDL, 1)
    full = update_clusters(
        now_frame.limit(0).withColumn("cluster_id", F.lit(None).cast("string")),
        now_frame,
        now_pairs,
        now_frame,
        0.9,
        **guard,
    ).clusters
    applied = before.join(on_driver.scope, ["source", "record_key"], "left_anti").unionByName(
        on_driver.clusters
    )
    assertDataFrameEqual(applied, full)
    # The graph is not one blob, and the guard split some components.
    assert full.select("cluster_id").distinct().count() > 10
    assert full.where(F.col("cluster_id") != F.col("component_id")).count() > 0
