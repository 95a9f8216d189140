"""Limits on the identity graph: identifier caps and reviewers' must-link / cannot-link decisions.

- A cap (``limits.max_per_customer`` in ``conf/identity.yaml``) bounds how many distinct
  identifiers of a type one customer may hold, e.g. at most 4 emails. One shared value (a
  family's landline, a shop assistant's email typed at the till) otherwise chains many people
  into one customer.
- A reviewer's ``cannot_link`` decision says two identifiers belong to different people; a
  ``must_link`` decision says they belong to one, and adds an edge to the graph. Decisions live
  in the Delta table ``identity/review_decisions``; every run and rebuild reads them, the latest
  decision per identifier pair wins and ``clear`` withdraws one.

The common run pays one small aggregation: the components are checked, and only when one breaks
a cap or a cannot-link are its records clustered again, one identifier type at a time in
``limits.priority`` order (strongest first). At each type, the groups of records the type's
values would join are checked; a join that would break a limit is refused, and the values that
would have made it are blocked with the reason ``cap_exceeded:<type>`` or ``cannot_link``. The
caller then blocks those values and computes the components again, so they are also kept out
of every later run's graph while the data says the same. Refusal is per group: every value that
would join that group is blocked, which can keep apart records one of those values alone would
have joined correctly (a split, never a wrong merge). Must-link edges are taken as given, before
any type; a cannot-link between two identifiers of one record, or one that a chain of must-link
decisions contradicts, cannot be honoured and stays broken.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cdplake.config.identity import GraphSettings, IdentifierLimits
from cdplake.identity.graph import bridges, connected_components, node_key, pair_sides

DECISIONS_DDL = (
    "decision STRING, id_type_a STRING, id_value_a STRING, id_type_b STRING, id_value_b STRING, "
    "reviewer STRING, decided_at TIMESTAMP, note STRING"
)
DECISIONS = ("must_link", "cannot_link", "clear")
MUST_LINK = "must_link"
CANNOT_LINK = "cannot_link"
_LABEL = "L|"  # prefixes keep record labels and identifier nodes apart in one graph
_NODE = "N|"
_DEFAULT_GRAPH = GraphSettings()


def _normalised(id_type: Column, id_value: Column) -> Column:
    # The same normalisation extraction applies, so a reviewer may type " Ann@X.com ".
    value = F.when(id_type == "email", F.lower(F.trim(id_value))).otherwise(F.trim(id_value))
    return node_key(F.trim(id_type), value)


def current_decisions(decisions: DataFrame) -> DataFrame:
    """The decision in force per identifier pair: the latest one, with ``clear`` dropping the pair.

    Args:
        decisions: rows of :data:`DECISIONS_DDL`.

    Returns:
        ``decision, node_a, node_b`` with ``node_a < node_b`` (graph node keys).
    """
    a = _normalised(F.col("id_type_a"), F.col("id_value_a"))
    b = _normalised(F.col("id_type_b"), F.col("id_value_b"))
    pairs = decisions.select(
        "decision", "decided_at", F.least(a, b).alias("node_a"), F.greatest(a, b).alias("node_b")
    )
    latest = Window.partitionBy("node_a", "node_b").orderBy(F.col("decided_at").desc(), F.col("decision"))
    return (
        pairs.where(F.col("node_a") != F.col("node_b"))
        .withColumn("_n", F.row_number().over(latest))
        .where((F.col("_n") == 1) & (F.col("decision") != "clear"))
        .select("decision", "node_a", "node_b")
    )


def check_decisions(decisions: DataFrame) -> DataFrame:
    """Rows whose ``decision`` is not one of :data:`DECISIONS` or that miss an identifier.

    Empty for a valid table; :func:`cdplake.identity.resolve.resolve` refuses to run otherwise,
    since silently skipping a reviewer's decision would undo their work.
    """
    missing = F.lit(False)
    for name in ("id_type_a", "id_value_a", "id_type_b", "id_value_b", "decided_at"):
        missing = missing | F.col(name).isNull()
    return decisions.where(~F.col("decision").isin(list(DECISIONS)) | F.col("decision").isNull() | missing)


def must_link_edges(current: DataFrame, nodes: DataFrame) -> DataFrame:
    """``src, dst`` edges of the must-link decisions whose two identifiers are both in the graph."""
    present = nodes.select("node").distinct()
    return (
        current.where(F.col("decision") == MUST_LINK)
        .join(present.withColumnRenamed("node", "node_a"), "node_a")
        .join(present.withColumnRenamed("node", "node_b"), "node_b")
        .select(F.col("node_a").alias("src"), F.col("node_b").alias("dst"))
    )


def _cap_of(caps: dict[str, int]) -> Column:
    return F.create_map(*[F.lit(x) for kv in sorted(caps.items()) for x in kv])[F.col("id_type")]


def _broken(members: DataFrame, group: str, caps: dict[str, int], cannot: DataFrame | None) -> DataFrame:
    """Groups of ``members`` (``group, id_type, node``) that break a cap or a cannot-link.

    Returns:
        ``group, reason`` once per broken group; the reason names the first capped type
        (alphabetically) that is over its cap, else ``cannot_link``.
    """
    parts = []
    if caps:
        over = (
            members.where(F.col("id_type").isin(list(caps)))
            .groupBy(group, "id_type")
            .agg(F.countDistinct("node").alias("n"))
            .where(F.col("n") > _cap_of(caps))
            .groupBy(group)
            .agg(F.concat(F.lit("cap_exceeded:"), F.min("id_type")).alias("reason"))
        )
        parts.append(over)
    if cannot is not None:
        side_a = members.select(F.col(group), F.col("node").alias("node_a"))
        side_b = members.select(F.col(group).alias("_g"), F.col("node").alias("node_b"))
        clash = (
            cannot.join(side_a, "node_a")
            .join(side_b, "node_b")
            .where(F.col(group) == F.col("_g"))
            .select(group, F.lit(CANNOT_LINK).alias("reason"))
        )
        parts.append(clash)
    if not parts:
        return members.sparkSession.createDataFrame([], f"{group} STRING, reason STRING")
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out.groupBy(group).agg(F.min("reason").alias("reason"))


def broken_components(
    linked: DataFrame, components: DataFrame, limits: IdentifierLimits, cannot: DataFrame | None
) -> DataFrame:
    """Components that break a cap or hold both identifiers of a cannot-link decision.

    Args:
        linked: ``id_type, node`` (more columns allowed) of every linked identifier.
        components: ``node, component``.
        limits: the caps.
        cannot: ``node_a, node_b`` cannot-link pairs, or None.

    Returns:
        ``component, reason``.
    """
    members = linked.select("id_type", "node").distinct().join(components, "node")
    return _broken(members, "component", limits.caps, cannot)


def refused_identifiers(
    linked: DataFrame,
    components: DataFrame,
    broken: DataFrame,
    limits: IdentifierLimits,
    *,
    must_edges: DataFrame | None = None,
    cannot: DataFrame | None = None,
    graph: GraphSettings = _DEFAULT_GRAPH,
) -> DataFrame:
    """Identifiers to block so that no component breaks a limit (see the module docstring).

    Args:
        linked: ``source, record_key, id_type, id_value, node`` of every linked identifier.
        components: ``node, component`` of the graph with every edge.
        broken: ``component`` of those that break a limit (:func:`broken_components`).
        limits: caps and the order in which identifier types may join records.
        must_edges: ``src, dst`` must-link edges (taken before any type, never refused).
        cannot: ``node_a, node_b`` cannot-link pairs.
        graph: connected-components settings.

    Returns:
        ``id_type, id_value, reason`` for each refused identifier.
    """
    held = (
        linked.join(components, "node")
        .join(broken.select("component"), "component")
        .select(
            F.concat_ws("\u0001", "source", "record_key").alias("rec"),
            "id_type",
            "id_value",
            "node",
        )
        .distinct()
        .localCheckpoint(eager=True)
    )
    rows = held.select("rec", "id_type", "node")
    labels = rows.select("rec").distinct().withColumn("label", F.col("rec"))
    if must_edges is not None:
        ends = rows.select("rec", "node")
        rec_edges = (
            must_edges.join(ends.withColumnRenamed("node", "src").withColumnRenamed("rec", "rec_a"), "src")
            .join(ends.withColumnRenamed("node", "dst").withColumnRenamed("rec", "rec_b"), "dst")
            .select(F.col("rec_a").alias("src"), F.col("rec_b").alias("dst"))
        )
        joined = connected_components(
            labels.select(F.col("rec").alias("node")),
            rec_edges,
            max_iterations=graph.max_iterations,
            checkpoint_every=graph.checkpoint_every,
        )
        labels = joined.select(F.col("node").alias("rec"), F.col("component").alias("label"))
    labels = labels.localCheckpoint(eager=True)

    refused: list[DataFrame] = []
    for id_type in limits.priority:
        by_label = (
            rows.where(F.col("id_type") == id_type).join(labels, "rec").select("label", "node").distinct()
        )
        bridging = by_label.groupBy("node").agg(F.count("label").alias("n")).where("n >= 2").select("node")
        edges = by_label.join(bridging, "node").select(
            F.concat(F.lit(_LABEL), "label").alias("src"), F.concat(F.lit(_NODE), "node").alias("dst")
        )
        edges = edges.localCheckpoint(eager=True)
        if edges.isEmpty():
            continue
        tentative = connected_components(
            edges.select(F.col("src").alias("node")).unionByName(edges.select(F.col("dst").alias("node"))),
            edges,
            max_iterations=graph.max_iterations,
            checkpoint_every=graph.checkpoint_every,
        )
        # Every group holds a label and "L|" < "N|", so its smallest vertex is one of its labels.
        joins = tentative.where(F.col("node").startswith(_LABEL)).select(
            F.expr("substring(node, 3)").alias("label"), F.expr("substring(component, 3)").alias("group")
        )
        grouped = labels.join(joins, "label", "left").select(
            "rec", "label", F.coalesce("group", "label").alias("group")
        )
        members = rows.join(grouped, "rec").select("group", "id_type", "node")
        bad = _broken(members.join(joins.select("group").distinct(), "group"), "group", limits.caps, cannot)
        bad = bad.localCheckpoint(eager=True)
        refused.append(
            by_label.join(bridging, "node")
            .join(joins, "label")
            .join(bad, "group")
            .select("node", "reason")
            .distinct()
        )
        labels = (
            grouped.join(bad.select("group", F.lit(True).alias("refused")), "group", "left")
            .select("rec", F.when(F.col("refused"), F.col("label")).otherwise(F.col("group")).alias("label"))
            .localCheckpoint(eager=True)
        )
    if not refused:
        return linked.sparkSession.createDataFrame([], "id_type STRING, id_value STRING, reason STRING")
    out = refused[0]
    for part in refused[1:]:
        out = out.unionByName(part)
    names = held.select("node", "id_type", "id_value").distinct()
    return out.join(names, "node").groupBy("id_type", "id_value").agg(F.min("reason").alias("reason"))


JOINED = "joined"
REFUSED = "refused"
WEAK_BRIDGE = "weak_bridge"


def _link_groups(links: DataFrame, graph: GraphSettings) -> DataFrame:
    ends = links.select(F.col("component_l").alias("node")).unionByName(
        links.select(F.col("component_r").alias("node"))
    )
    return connected_components(
        ends,
        links.select(F.col("component_l").alias("src"), F.col("component_r").alias("dst")),
        max_iterations=graph.max_iterations,
        checkpoint_every=graph.checkpoint_every,
    ).select(F.col("node").alias("component"), F.col("component").alias("group"))


def weak_bridge_links(links: DataFrame, grouped: DataFrame, below: float) -> DataFrame:
    """Links that alone hold a group of three or more components together, and are weak.

    Args:
        links: ``component_l, component_r, match_probability`` (one row per component pair).
        grouped: ``component, group`` of the components the links join.
        below: a bridge whose best pair is under this probability is weak.

    Returns:
        ``component_l, component_r`` of the links to cut.
    """
    sizes = grouped.groupBy("group").agg(F.count(F.lit(1)).alias("_size"))
    # Only groups of 3+ components with a weak link can have a weak bridge: the pandas step
    # (Python workers) runs for those groups alone.
    candidates = (
        links.join(grouped.withColumnRenamed("component", "component_l"), "component_l")
        .join(sizes, "group")
        .where(F.col("_size") >= 3)
    )
    weak_groups = candidates.where(F.col("match_probability") < below).select("group").distinct()
    marked = bridges(
        candidates.join(weak_groups, "group", "left_semi").select(
            "group",
            F.col("component_l").alias("src"),
            F.col("component_r").alias("dst"),
            "match_probability",
        )
    )
    return marked.where(F.col("bridge") & (F.col("match_probability") < below)).select(
        F.col("src").alias("component_l"), F.col("dst").alias("component_r")
    )


def join_probabilistic(
    linked: DataFrame,
    components: DataFrame,
    pairs: DataFrame,
    limits: IdentifierLimits,
    *,
    cannot: DataFrame | None = None,
    graph: GraphSettings = _DEFAULT_GRAPH,
    weak_bridge_probability: float = 0.0,
) -> tuple[DataFrame, DataFrame]:
    """Join deterministic components that probabilistically matched records link, within limits.

    Probabilistic links are the weakest evidence, so they come after every identifier type.
    Between two components the link's strength is their best scored record pair. Two guards
    run on the groups of components the links would join:

    1. Weak bridges: in a group of three or more components, a link whose removal would split
       the group and whose probability is below ``weak_bridge_probability`` is cut, and the
       groups are formed again without it (two people, each a cluster of records, are not
       merged by one weak match; a pair of components is judged by the threshold alone).
    2. Limits: a group that would break a cap or a cannot-link decision is not joined at all
       (its components stay apart, its links unused).

    Args:
        linked: ``source, record_key, id_type, node`` of every linked identifier.
        components: ``node, component`` of the deterministic graph (limits already applied).
        pairs: ``source_l, record_key_l, source_r, record_key_r, match_probability`` of the
            links above the threshold.
        limits: the caps.
        cannot: ``node_a, node_b`` cannot-link pairs.
        graph: connected-components settings.
        weak_bridge_probability: see guard 1; 0 turns it off.

    Returns:
        ``(components, links)``: ``node, component`` after the joins, and for every link
        between two different components ``component_l, component_r`` (``component_l <
        component_r``), ``match_probability``, ``record_pairs`` (scored pairs behind it) and
        ``outcome``: ``joined``, ``weak_bridge`` (cut by guard 1) or ``refused`` (guard 2).
    """
    record_component = (
        linked.select("source", "record_key", "node")
        .join(components, "node")
        .groupBy("source", "record_key")
        .agg(F.min("component").alias("component"))
    )
    side = pair_sides(record_component, "component", "component")
    a, b = F.col("component_l"), F.col("component_r")
    links = (
        pairs.select("source_l", "record_key_l", "source_r", "record_key_r", "match_probability")
        .join(side["l"], ["source_l", "record_key_l"])
        .join(side["r"], ["source_r", "record_key_r"])
        .where(a != b)
        .groupBy(F.least(a, b).alias("component_l"), F.greatest(a, b).alias("component_r"))
        .agg(
            F.max("match_probability").alias("match_probability"),
            F.count(F.lit(1)).alias("record_pairs"),
        )
        .localCheckpoint(eager=True)
    )
    if links.isEmpty():
        return components, links.withColumn("outcome", F.lit(JOINED))
    grouped = _link_groups(links, graph)
    cut = None
    if weak_bridge_probability > 0:
        cut = weak_bridge_links(links, grouped, weak_bridge_probability).localCheckpoint(eager=True)
        if cut.isEmpty():
            cut = None
        else:
            kept = links.join(cut, ["component_l", "component_r"], "left_anti")
            # Every component of a link stays a vertex, so one cut off alone is its own group.
            ends = grouped.select(F.col("component").alias("node"))
            grouped = connected_components(
                ends,
                kept.select(F.col("component_l").alias("src"), F.col("component_r").alias("dst")),
                max_iterations=graph.max_iterations,
                checkpoint_every=graph.checkpoint_every,
            ).select(F.col("node").alias("component"), F.col("component").alias("group"))
    members = linked.select("id_type", "node").distinct().join(components, "node").join(grouped, "component")
    bad = _broken(members.select("group", "id_type", "node"), "group", limits.caps, cannot)
    bad = bad.select("group", F.lit(True).alias("refused")).localCheckpoint(eager=True)
    verdict = grouped.join(bad, "group", "left").select(
        "component", "group", F.coalesce("refused", F.lit(False)).alias("refused")
    )
    joined = components.join(verdict, "component", "left").select(
        "node",
        F.when(F.col("refused") | F.col("group").isNull(), F.col("component"))
        .otherwise(F.col("group"))
        .alias("component"),
    )
    outcome = F.when(F.col("refused"), F.lit(REFUSED)).otherwise(F.lit(JOINED))
    if cut is not None:
        links = links.join(cut.withColumn("_cut", F.lit(True)), ["component_l", "component_r"], "left")
        outcome = F.when(F.col("_cut").isNotNull(), F.lit(WEAK_BRIDGE)).otherwise(outcome)
    used = links.join(
        verdict.select(F.col("component").alias("component_l"), "refused"), "component_l"
    ).select("component_l", "component_r", "match_probability", "record_pairs", outcome.alias("outcome"))
    return joined, used
