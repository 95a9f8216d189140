"""Updating the clusters of scored pairs for a batch of records, without clustering everything.

A full clustering (:func:`cdplake.identity.probabilistic.clusters`) labels every record with
the smallest ``unique_id`` (``source:record_key``) of its connected component of pairs at or
above the threshold, then splits clusters over the size limit. Both steps are local to a
cluster, so when a batch of records is new, changed or gone, only the clusters those records
were in, or now link to, can change. :func:`update_clusters` finds that scope, closes it under
the pairs (a pair never crosses its edge), clusters the scope alone with the same rules and
returns its rows: replacing the scope's rows of the old clustering by them gives the full
clustering of the new pairs (``tests/integration/test_linkage.py`` compares the two).
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdplake.config.identity import GraphSettings
from cdplake.identity.graph import connected_components
from cdplake.identity.incremental import both_sides, pairs_touching
from cdplake.identity.linkage_settings import UNIQUE_ID

RECORD = ["source", "record_key"]
_DEFAULT_GRAPH = GraphSettings()


class ClusterScopeNotClosed(RuntimeError):
    """The scope kept growing for more rounds than allowed: cluster everything instead."""


@dataclass(frozen=True)
class ClusterUpdate:
    """What :func:`update_clusters` returns.

    Attributes:
        scope: ``source, record_key`` of every record whose row of the old clustering is
            replaced (it includes records that are gone).
        clusters: ``source, record_key, cluster_id, component_id`` of the scope's records
            that exist now (``component_id``: the connected component before the guard).
        rounds: rounds the scope search took.
    """

    scope: DataFrame
    clusters: DataFrame
    rounds: int


def _uid(source: str, key: str) -> F.Column:
    return F.concat_ws(":", F.col(source), F.col(key))


def cluster_scope(
    previous: DataFrame, links: DataFrame, touched: DataFrame, *, max_rounds: int = 10
) -> tuple[DataFrame, int]:
    """The records whose cluster may change: ``touched``, closed under old clusters and links.

    The first round takes the touched records, the records a link joins to them, and every
    record of the old groups of those. With a ``component_id`` column in ``previous`` (the
    connected component each cluster lies in) the groups are components, and that is closed
    already: a link between two untouched records lies inside one old component, and every
    other link touches a touched record. Without it the groups are clusters, which the
    over-merge guard may have split out of one component, so each later round adds the far
    end of every link that leaves the scope, with its old cluster, until none does.

    Args:
        previous: ``source, record_key, cluster_id`` (and optionally ``component_id``) of
            the old clustering.
        links: ``source_l, record_key_l, source_r, record_key_r`` pairs at or above the
            threshold now.
        touched: ``source, record_key`` of the records new, changed or gone.
        max_rounds: rounds before giving up.

    Returns:
        ``(scope, rounds)``; ``scope`` is ``source, record_key``, checkpointed.

    Raises:
        ClusterScopeNotClosed: still growing after ``max_rounds``.
    """
    by_component = "component_id" in previous.columns
    group = "component_id" if by_component else "cluster_id"
    touched = touched.select(*RECORD).distinct()
    reached = touched.unionByName(both_sides(pairs_touching(links, touched))).distinct()
    for round_no in range(1, max_rounds + 1):
        hit = previous.join(reached, RECORD, "left_semi").select(group).distinct()
        scope = (
            reached.unionByName(previous.join(hit, group, "left_semi").select(*RECORD))
            .distinct()
            .localCheckpoint(eager=True)
        )
        if by_component:
            return scope, round_no
        # Links with one end in the scope: their far ends outside it, if any.
        outside = both_sides(pairs_touching(links, scope)).join(scope, RECORD, "left_anti").distinct()
        outside = outside.localCheckpoint(eager=True)
        if outside.isEmpty():
            return scope, round_no
        reached = scope.unionByName(outside)
    raise ClusterScopeNotClosed(
        f"the records a batch can re-cluster still grew after {max_rounds} rounds: cluster every record"
    )


def update_clusters(
    previous: DataFrame,
    records: DataFrame,
    pairs: DataFrame,
    touched: DataFrame,
    threshold: float,
    *,
    max_cluster_size: int = 0,
    split_thresholds: tuple[float, ...] = (),
    max_rounds: int = 10,
    graph: GraphSettings = _DEFAULT_GRAPH,
) -> ClusterUpdate:
    """Re-cluster only what a batch of new, changed or vanished records can change.

    Args:
        previous: ``source, record_key, cluster_id`` of the old clustering (every record
            then), with ``component_id`` when the old clustering kept it (one scope round).
        records: ``source, record_key`` of every record now.
        pairs: ``source_l, record_key_l, source_r, record_key_r, match_probability``: the
            scored pairs now, the batch's pairs merged in (below the threshold allowed).
        touched: ``source, record_key`` of the records new, changed or gone since ``previous``.
        threshold: pairs at or above it link (as for the full clustering).
        max_cluster_size, split_thresholds: the over-merge guard, as for the full clustering.
        max_rounds: scope-search rounds before :class:`ClusterScopeNotClosed`.
        graph: connected-components settings.

    Returns:
        The scope and its new rows; the result equals a full clustering's rows of the scope.
    """
    from cdplake.identity.probabilistic import split_too_large

    links = pairs.where(F.col("match_probability") >= threshold)
    scope, rounds = cluster_scope(previous, links, touched, max_rounds=max_rounds)
    members = records.select(*RECORD).join(scope, RECORD, "left_semi").withColumn(UNIQUE_ID, _uid(*RECORD))
    inside = pairs_touching(links, members, both=True)
    components = connected_components(
        members.select(F.col(UNIQUE_ID).alias("node")),
        inside.select(
            _uid("source_l", "record_key_l").alias("src"), _uid("source_r", "record_key_r").alias("dst")
        ),
        max_iterations=graph.max_iterations,
        checkpoint_every=graph.checkpoint_every,
    )
    cut = (
        members.join(components.withColumnRenamed("node", UNIQUE_ID), UNIQUE_ID)
        .select(UNIQUE_ID, *RECORD, F.col("component").alias("cluster_id"))
        .localCheckpoint(eager=True)
    )
    too_large = (
        max_cluster_size
        and split_thresholds
        and not cut.groupBy("cluster_id").count().where(F.col("count") > max_cluster_size).isEmpty()
    )
    if too_large:
        scored = inside.select(
            _uid("source_l", "record_key_l").alias(f"{UNIQUE_ID}_l"),
            _uid("source_r", "record_key_r").alias(f"{UNIQUE_ID}_r"),
            F.col("match_probability").cast("double"),
        )
        clustered = split_too_large(cut, scored, max_cluster_size, split_thresholds)
    else:
        clustered = cut.drop(UNIQUE_ID).withColumn("component_id", F.col("cluster_id"))
    return ClusterUpdate(
        scope=scope, clusters=clustered.select(*RECORD, "cluster_id", "component_id"), rounds=rounds
    )
