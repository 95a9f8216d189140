"""The identity graph and its connected components, computed with DataFrames only.

Nodes are identifiers written as ``id_type:id_value``; a record links all of its identifiers.
Components come from iterative min-label propagation: every node starts labelled with itself
and repeatedly takes the smallest label among itself and its neighbours until nothing changes,
so each component ends labelled with its smallest identifier. Nothing is collected to the
driver except one changed-labels count per round.
"""

from __future__ import annotations

from collections import defaultdict
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType, StructField, StructType

if TYPE_CHECKING:
    import pandas as pd


class IdentityGraphError(RuntimeError):
    """Connected components did not converge within the configured number of rounds."""


def node_key(id_type: Column, id_value: Column) -> Column:
    """The graph node of an identifier: ``id_type:id_value`` (also what customer ids hash)."""
    return F.concat_ws(":", id_type, id_value)


def record_edges(identifiers: DataFrame) -> DataFrame:
    """Edges that connect all identifiers of each record.

    Linking every identifier to the record's smallest one (a star) connects the same nodes as
    linking every pair, with n-1 edges instead of n(n-1)/2.

    Args:
        identifiers: ``source, record_key, node`` rows.

    Returns:
        Distinct undirected edges as ``src, dst`` with ``src != dst``.
    """
    hubs = identifiers.groupBy("source", "record_key").agg(F.min("node").alias("hub"))
    return (
        identifiers.join(hubs, ["source", "record_key"])
        .where(F.col("node") != F.col("hub"))
        .select(F.col("node").alias("src"), F.col("hub").alias("dst"))
        .distinct()
    )


def pair_sides(records: DataFrame, value: str, renamed: str) -> dict[str, DataFrame]:
    """``records`` shaped to join either record of a scored pair.

    Args:
        records: ``source, record_key`` and a ``value`` column (a customer, a component).
        value: the column to carry.
        renamed: its name on each side, suffixed ``_l`` / ``_r``.

    Returns:
        ``{"l": source_l, record_key_l, <renamed>_l; "r": the same with _r}``.
    """
    return {
        s: records.select(
            F.col("source").alias(f"source_{s}"),
            F.col("record_key").alias(f"record_key_{s}"),
            F.col(value).alias(f"{renamed}_{s}"),
        )
        for s in ("l", "r")
    }


def connected_components(
    vertices: DataFrame,
    edges: DataFrame,
    *,
    max_iterations: int = 40,
    checkpoint_every: int = 4,
) -> DataFrame:
    """Label every vertex with the smallest vertex of its connected component.

    Each round a node takes the smallest label among its own and its neighbours', then jumps to
    its label's label (pointer jumping: a label is always a node of the same component, so this
    is safe and shortens long chains). The loop stops in the first round where no label
    changed.

    Args:
        vertices: one column ``node``; nodes without edges are their own component.
        edges: ``src, dst`` node pairs, treated as undirected.
        max_iterations: rounds before giving up.
        checkpoint_every: rounds between ``localCheckpoint`` lineage cuts; in between, each
            round is cached so the changed-count does not recompute the whole history.

    Returns:
        ``node, component`` for every vertex.

    Raises:
        IdentityGraphError: labels still changed after ``max_iterations`` rounds.
    """
    both = (
        edges.select("src", "dst")
        .unionByName(edges.select(F.col("dst").alias("src"), F.col("src").alias("dst")))
        .distinct()
        .localCheckpoint(eager=True)
    )
    labels = vertices.select("node").distinct().withColumn("label", F.col("node")).localCheckpoint(eager=True)
    for round_no in range(1, max_iterations + 1):
        neighbour_min = (
            both.join(labels.withColumnRenamed("node", "dst").withColumnRenamed("label", "nl"), "dst")
            .groupBy("src")
            .agg(F.min("nl").alias("nl"))
            .withColumnRenamed("src", "node")
        )
        stepped = labels.join(neighbour_min, "node", "left").select(
            "node", F.least("label", F.coalesce("nl", "label")).alias("label")
        )
        target = stepped.select(F.col("node").alias("t_node"), F.col("label").alias("t_label"))
        jumped = stepped.join(target, F.col("label") == F.col("t_node"), "left").select(
            "node", F.least("label", F.coalesce("t_label", "label")).alias("label")
        )
        # Cache every round so the count below and the next round share one computation;
        # checkpoint every few rounds so the plan does not grow with the number of rounds.
        jumped = jumped.localCheckpoint(eager=True) if round_no % checkpoint_every == 0 else jumped.cache()
        changed = (
            jumped.join(labels.withColumnRenamed("label", "old"), "node")
            .where(F.col("label") != F.col("old"))
            .count()
        )
        labels.unpersist()
        labels = jumped
        if changed == 0:
            return labels.withColumnRenamed("label", "component")
    raise IdentityGraphError(
        f"identity graph did not converge after {max_iterations} rounds of label propagation; "
        "raise graph.max_iterations in conf/identity.yaml, or look for an identifier that "
        "should be on the never-link list (one shared value chains many people together)"
    )


def _mark_bridges(edges: pd.DataFrame) -> pd.DataFrame:
    """Flag the bridges of one group's simple undirected graph (Tarjan's low-link, iterative).

    An edge is a bridge when no other path joins its ends: ``low[child] > disc[parent]``.
    """
    adjacent: dict[str, list[tuple[str, int]]] = defaultdict(list)
    for i, (a, b) in enumerate(zip(edges["src"], edges["dst"], strict=True)):
        adjacent[a].append((b, i))
        adjacent[b].append((a, i))
    disc: dict[str, int] = {}
    low: dict[str, int] = {}
    bridge = [False] * len(edges)
    for root in adjacent:
        if root in disc:
            continue
        disc[root] = low[root] = len(disc)
        # (node, edge it was reached by, iterator over its neighbours): an explicit stack, so a
        # long chain cannot hit Python's recursion limit.
        stack = [(root, -1, iter(adjacent[root]))]
        while stack:
            node, via, neighbours = stack[-1]
            for nxt, edge in neighbours:
                if edge == via:
                    continue
                if nxt in disc:
                    low[node] = min(low[node], disc[nxt])
                else:
                    disc[nxt] = low[nxt] = len(disc)
                    stack.append((nxt, edge, iter(adjacent[nxt])))
                    break
            else:
                stack.pop()
                if stack:
                    parent = stack[-1][0]
                    low[parent] = min(low[parent], low[node])
                    if low[node] > disc[parent]:
                        bridge[via] = True
    return edges.assign(bridge=bridge)


def bridges(edges: DataFrame) -> DataFrame:
    """Flag every edge whose removal would disconnect its group.

    Runs one pandas function per group (``groupBy().applyInPandas``) on the executors: finding
    bridges needs a depth-first search, which DataFrame operations cannot express, and groups
    are small (a handful of customers a probabilistic match would join). No group is collected
    to the driver.

    Args:
        edges: ``group, src, dst`` (string nodes, one row per undirected edge) plus any other
            columns, which are kept.

    Returns:
        The rows of ``edges`` with a boolean ``bridge`` column.
    """
    schema = StructType([*edges.schema.fields, StructField("bridge", BooleanType(), nullable=False)])
    return edges.groupBy("group").applyInPandas(_mark_bridges, schema=schema)
