"""Incremental identity: which part of the identity graph a batch of changed records can move.

Every step of :func:`cdplake.identity.resolve.resolve` is local to a connected part of the
*raw* graph, the records joined by any identifier a never-link rule does not block (capped
or not), by a reviewer's must-link or by a scored pair above the threshold: caps and
cannot-links are checked per component, probabilistic links join components, ids are minted
from a component's smallest identifier and kept from the previous customers it overlaps.
So resolving a set of records that is closed under those links and under the previous
customers (every record of a customer it touches) gives exactly what a full run gives for
those records, and leaves every other record's customer as it was.

:func:`resolution_scope` grows such a set from the records that changed since the last run
(:func:`changed_records`, :func:`changed_pair_records`), one hop per round until it stops
growing. ``cdplake.identity.resolve.resolve_identities(..., incremental=True)`` resolves only
that scope and MERGEs the result into the identity tables.
"""

from __future__ import annotations

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdplake.identity.graph import node_key

RECORD = ["source", "record_key"]
IDENTIFIER = ["source", "record_key", "id_type", "id_value"]
PAIR = ["source_l", "record_key_l", "source_r", "record_key_r"]


class ScopeNotConverged(RuntimeError):
    """The scope still grew after the configured number of rounds."""


def changed_records(current: DataFrame, previous: DataFrame) -> DataFrame:
    """Records whose set of identifiers differs between two identifier tables.

    Args:
        current: ``source, record_key, id_type, id_value`` extracted from silver now.
        previous: the same columns as the last run wrote them (identity/identifiers).

    Returns:
        Distinct ``source, record_key``: new records, records gone, records whose identifiers
        changed (a CRM contact with a new email).
    """
    now, before = current.select(*IDENTIFIER), previous.select(*IDENTIFIER)
    return now.subtract(before).unionByName(before.subtract(now)).select(*RECORD).distinct()


def changed_pair_records(current: DataFrame, previous: DataFrame) -> DataFrame:
    """Records on a scored pair that is new, gone or re-weighted between two pair sets.

    Args:
        current: ``source_l, record_key_l, source_r, record_key_r, match_probability`` now.
        previous: the same, as the last run used them.

    Returns:
        Distinct ``source, record_key`` of both sides of every such pair.
    """
    cols = [*PAIR, "match_probability"]
    now, before = current.select(*cols), previous.select(*cols)
    diff = now.subtract(before).unionByName(before.subtract(now))
    return both_sides(diff)


def pairs_touching(pairs: DataFrame, records: DataFrame, *, both: bool = False) -> DataFrame:
    """Scored pairs (``source_l, record_key_l, source_r, record_key_r, ...``) on ``records``.

    Args:
        pairs: scored pairs.
        records: ``source, record_key``.
        both: keep only pairs whose two records are in ``records`` (else either is enough;
            a pair with both in appears twice).
    """
    if both:
        side = {
            s: records.select(
                F.col("source").alias(f"source_{s}"), F.col("record_key").alias(f"record_key_{s}")
            )
            for s in ("l", "r")
        }
        on_left = pairs.join(side["l"], ["source_l", "record_key_l"], "left_semi")
        return on_left.join(side["r"], ["source_r", "record_key_r"], "left_semi")
    # Either end: each pair once per end, so one scan of ``pairs`` serves both.
    ends = F.explode(
        F.array(
            *[F.struct(F.col(f"source_{s}").alias("s"), F.col(f"record_key_{s}").alias("k")) for s in "lr"]
        )
    )
    keys = records.select(F.col("source").alias("_end_s"), F.col("record_key").alias("_end_k"))
    return (
        pairs.withColumn("_end", ends)
        .select("*", F.col("_end.s").alias("_end_s"), F.col("_end.k").alias("_end_k"))
        .join(keys, ["_end_s", "_end_k"], "left_semi")
        .drop("_end", "_end_s", "_end_k")
    )


def both_sides(pairs: DataFrame) -> DataFrame:
    """The distinct ``source, record_key`` at either end of ``pairs`` (``*_l`` / ``*_r`` columns)."""
    left = pairs.select(F.col("source_l").alias("source"), F.col("record_key_l").alias("record_key"))
    right = pairs.select(F.col("source_r").alias("source"), F.col("record_key_r").alias("record_key"))
    return left.unionByName(right).distinct()


def resolution_scope(
    seeds: DataFrame,
    linkable: DataFrame,
    previous_records: DataFrame,
    *,
    pairs: DataFrame | None = None,
    must_link: DataFrame | None = None,
    max_rounds: int = 10,
) -> DataFrame:
    """Grow ``seeds`` into a set of records a scoped resolve gets right (module docstring).

    Runs one Spark job per round (a count); each round's set is checkpointed.

    Args:
        seeds: ``source, record_key`` of the changed records.
        linkable: ``source, record_key, id_type, id_value`` of current identifiers that no
            never-link rule blocks (capped ones included: a cap is decided per component).
        previous_records: ``source, record_key, customer_id`` of the last run.
        pairs: current scored pairs at or above the threshold (``source_l, ...``), or None.
        must_link: reviewers' must-link decisions in force as ``node_a, node_b``, or None.
        max_rounds: rounds before giving up.

    Returns:
        Distinct ``source, record_key``.

    Raises:
        ScopeNotConverged: still growing after ``max_rounds``.
    """
    prev = previous_records.select(*RECORD, "customer_id")

    def with_customers(records: DataFrame) -> DataFrame:
        customers = prev.join(records, RECORD, "left_semi").select("customer_id").distinct()
        return records.unionByName(prev.join(customers, "customer_id", "left_semi").select(*RECORD))

    scope = with_customers(seeds.select(*RECORD)).distinct().localCheckpoint(eager=True)
    size = scope.count()
    for _ in range(max_rounds):
        values = linkable.join(scope, RECORD, "left_semi").select("id_type", "id_value").distinct()
        if must_link is not None:
            nodes = values.select(node_key(F.col("id_type"), F.col("id_value")).alias("node"))
            partners = must_link.join(nodes.withColumnRenamed("node", "node_a"), "node_a").select(
                F.col("node_b").alias("node")
            )
            partners = partners.unionByName(
                must_link.join(nodes.withColumnRenamed("node", "node_b"), "node_b").select(
                    F.col("node_a").alias("node")
                )
            )
            values = values.unionByName(
                linkable.withColumn("node", node_key(F.col("id_type"), F.col("id_value")))
                .join(partners, "node", "left_semi")
                .select("id_type", "id_value")
            )
        reached = linkable.join(values, ["id_type", "id_value"], "left_semi").select(*RECORD)
        if pairs is not None:
            touching = pairs_touching(pairs, scope)
            reached = reached.unionByName(both_sides(touching))
        grown = with_customers(scope.unionByName(reached)).distinct().localCheckpoint(eager=True)
        grown_size = grown.count()
        if grown_size == size:
            return grown
        scope, size = grown, grown_size
    raise ScopeNotConverged(
        f"the incremental identity scope still grew after {max_rounds} rounds ({size} records)"
    )
