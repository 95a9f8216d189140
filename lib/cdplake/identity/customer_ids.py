"""Customer ids for connected components: the one seam where ids are decided.

Two policies. :func:`assign_minted_ids` mints an id from a component's smallest identifier:
deterministic, but it changes when two components merge. :func:`assign_stable_ids` (what
:func:`cdplake.identity.resolve_identities` uses) starts from the previous customer_map and
keeps every id that still has identifiers: on a merge the larger cluster's id survives and
the other becomes an alias, on a split the larger part keeps the id and the rest is minted.
:func:`identity_changes` compares two customer_maps into the change feed (created, merged,
split, removed) that the identity job appends to ``identity/identity_changes``; its
``merged`` rows are the alias table ``identity/customer_id_aliases``.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

CUSTOMER_ID_PREFIX = "cus_"
HASH_CHARS = 16

# components (id_type, id_value, node, component) -> the same rows plus customer_id.
# `component` is the smallest node key (`id_type:id_value`) of the identifier's component.
# An assigner that needs history (the previous customer_map) is a closure over it.
CustomerIdAssigner = Callable[[DataFrame], DataFrame]


def mint_customer_id(smallest_identifier: Column) -> Column:
    """``cus_`` + the first 16 hex characters of SHA-256 of the component's smallest identifier.

    Args:
        smallest_identifier: the ``id_type:id_value`` string of the component's smallest node.
    """
    return F.concat(F.lit(CUSTOMER_ID_PREFIX), F.substring(F.sha2(smallest_identifier, 256), 1, HASH_CHARS))


def assign_minted_ids(components: DataFrame) -> DataFrame:
    """The default :data:`CustomerIdAssigner`: :func:`mint_customer_id` of each component."""
    return components.withColumn("customer_id", mint_customer_id(F.col("component")))


def assign_stable_ids(previous: DataFrame | None) -> CustomerIdAssigner:
    """A :data:`CustomerIdAssigner` that keeps the ids of ``previous`` (the last customer_map).

    Every previous id goes to the new component holding most of its identifiers (a split:
    the larger part keeps the id; ties go to the smaller component key). A component that
    receives several previous ids keeps the one with most identifiers in it (a merge: the
    larger cluster survives; ties go to the smaller id) and the others become aliases of it
    (:func:`identity_changes`). A component that receives none is minted: from its smallest
    identifier when none of its identifiers had an id before (so a first run equals
    :func:`assign_minted_ids`), otherwise from ``split:`` + that identifier, because the part
    that split off may hold the very identifier the surviving id was minted from.

    Args:
        previous: ``id_type, id_value, customer_id`` of the last run; None on the first run.
    """
    if previous is None:
        return assign_minted_ids

    def assign(components: DataFrame) -> DataFrame:
        old = previous.select("id_type", "id_value", F.col("customer_id").alias("_old_id"))
        overlap = (
            components.join(old, ["id_type", "id_value"])
            .groupBy("component", "_old_id")
            .agg(F.count("*").alias("_n"))
        )
        largest_part = Window.partitionBy("_old_id").orderBy(F.desc("_n"), F.col("component"))
        claims = overlap.withColumn("_r", F.row_number().over(largest_part)).where("_r = 1")
        survivor = Window.partitionBy("component").orderBy(F.desc("_n"), F.col("_old_id"))
        kept = (
            claims.withColumn("_r", F.row_number().over(survivor))
            .where("_r = 1")
            .select("component", F.col("_old_id").alias("_kept_id"))
        )
        had_id = overlap.select("component").distinct().withColumn("_had_id", F.lit(True))
        minted = F.when(
            F.col("_had_id"), mint_customer_id(F.concat(F.lit("split:"), F.col("component")))
        ).otherwise(mint_customer_id(F.col("component")))
        return (
            components.join(kept, "component", "left")
            .join(had_id, "component", "left")
            .withColumn("customer_id", F.coalesce(F.col("_kept_id"), minted))
            .drop("_kept_id", "_had_id")
        )

    return assign


# What happened to customer ids between two customer_maps, one row per change.
CHANGES_DDL = "change STRING, customer_id STRING, related_id STRING, identifiers BIGINT"


def identity_changes(previous: DataFrame | None, current: DataFrame) -> DataFrame:
    """Compare two customer_maps (``id_type, id_value, customer_id``): the identity change feed.

    Rows (:data:`CHANGES_DDL`):

    * ``created``: a new id none of whose identifiers had an id before (``related_id`` null);
    * ``merged``: previous id ``related_id`` is gone and most of its remaining identifiers
      are now in ``customer_id`` (the survivor); these rows are the alias table;
    * ``split``: a new id took identifiers that had id ``related_id`` (one row per such id);
    * ``removed``: previous id ``customer_id`` is gone and none of its identifiers remain.

    ``identifiers`` counts the identifiers behind the row. An id that is kept produces no
    row, also when it gained or lost identifiers.
    """
    spark = current.sparkSession
    keys = ["id_type", "id_value"]
    if previous is None:
        previous = spark.createDataFrame([], "id_type STRING, id_value STRING, customer_id STRING")
    old = previous.select(*keys, F.col("customer_id").alias("old_id"))
    flows = (
        current.select(*keys, "customer_id")
        .join(old, keys, "full_outer")
        .groupBy("customer_id", "old_id")
        .agg(F.count("*").alias("n"))
    )
    new_ids = current.select("customer_id").distinct()
    old_ids = old.select("old_id").distinct()
    fresh = new_ids.join(old_ids.withColumnRenamed("old_id", "customer_id"), "customer_id", "left_anti")
    gone = old_ids.join(new_ids.withColumnRenamed("customer_id", "old_id"), "old_id", "left_anti")

    into_fresh = flows.join(fresh, "customer_id", "left_semi")
    split = into_fresh.where(F.col("old_id").isNotNull())
    created = (
        into_fresh.join(split.select("customer_id"), "customer_id", "left_anti")
        .groupBy("customer_id")
        .agg(F.sum("n").alias("identifiers"))
    )
    from_gone = flows.join(gone, "old_id", "left_semi")
    landed = from_gone.where(F.col("customer_id").isNotNull())
    largest = Window.partitionBy("old_id").orderBy(F.desc("n"), F.col("customer_id"))
    merged = landed.withColumn("_r", F.row_number().over(largest)).where("_r = 1")
    removed = (
        from_gone.join(landed.select("old_id"), "old_id", "left_anti")
        .groupBy("old_id")
        .agg(F.sum("n").alias("n"))
    )
    none = F.lit(None).cast("string")
    rows = [
        created.select(F.lit("created"), "customer_id", none, "identifiers"),
        merged.select(F.lit("merged"), "customer_id", "old_id", "n"),
        split.select(F.lit("split"), "customer_id", "old_id", "n"),
        removed.select(F.lit("removed"), "old_id", none, "n"),
    ]
    out = rows[0].toDF("change", "customer_id", "related_id", "identifiers")
    for part in rows[1:]:
        out = out.unionByName(part.toDF("change", "customer_id", "related_id", "identifiers"))
    return out
