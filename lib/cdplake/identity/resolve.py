"""Silver records -> identifiers -> graph -> customer ids, and the identity tables it writes."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdplake.config.identity import IdentityConfig, load_identity_config
from cdplake.identity import _store
from cdplake.identity.customer_ids import (
    CustomerIdAssigner,
    assign_minted_ids,
    assign_stable_ids,
    identity_changes,
)
from cdplake.identity.explain import explain_links
from cdplake.identity.extract import SOURCES, extract_identifiers, flag_never_link
from cdplake.identity.graph import connected_components, node_key, record_edges
from cdplake.identity.limits import (
    CANNOT_LINK,
    DECISIONS,
    DECISIONS_DDL,
    JOINED,
    REFUSED,
    WEAK_BRIDGE,
    broken_components,
    check_decisions,
    current_decisions,
    join_probabilistic,
    must_link_edges,
    refused_identifiers,
)
from cdplake.io.delta import append, table_version

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdplake.config import EnvConfig

IDENTITY_LAYER = "identity"
# Appends to identity_changes / customer_id_aliases carry this txnAppId and, as txnVersion,
# the customer_map version the run replaces + 1: a run redone after a crash appends nothing twice.
CHANGES_APP_ID = "cdplake.identity.changes"
# Reviewers' must-link / cannot-link decisions (cdplake.identity.limits), read by every run.
REVIEW_DECISIONS = "review_decisions"


@dataclass(frozen=True)
class IdentityFrames:
    """What identity resolution produces, before anything is written.

    Attributes:
        identifiers: every observed identifier with ``blocked_reason`` (null = linked).
        blocked: identifiers a never-link rule kept out of the graph, with ``reason``.
        customer_map: ``id_type, id_value, customer_id`` for every linked identifier.
        record_customer: ``source, record_key, customer_id`` for every record with at least
            one linked identifier.
        customer_links: why records are one customer, one row per link with its evidence
            (:func:`cdplake.identity.explain.explain_links`).
        probabilistic_links: one row per probabilistic link between two deterministic
            components: ``component_l, component_r, match_probability, record_pairs, outcome``
            (joined, weak_bridge, refused; see :func:`join_probabilistic`); None when no
            pairs were given.
    """

    identifiers: DataFrame
    blocked: DataFrame
    customer_map: DataFrame
    record_customer: DataFrame
    customer_links: DataFrame
    probabilistic_links: DataFrame | None = None


@dataclass(frozen=True)
class IdentityResult:
    """Counts of one identity run (the tables hold the rows).

    Attributes:
        customers: distinct customer ids.
        identifiers: identifier observations (linked and blocked).
        records: silver records mapped to a customer.
        blocked: identifier observations kept out of the graph.
        blocked_by_reason: ``blocked`` split by never-link reason.
        unresolved_records: records whose every identifier was blocked (no customer).
        id_changes: rows appended to identity/identity_changes, by change
            (created, merged, split, removed).
        probabilistic_links: links between deterministic components from
            identity/probabilistic_edges by outcome: ``joined``, ``weak_bridge`` (cut as the
            only, weak link between parts of a group) and ``refused`` (a limit); empty
            without that table.
    """

    customers: int
    identifiers: int
    records: int
    blocked: int
    blocked_by_reason: dict[str, int] = field(default_factory=dict)
    unresolved_records: int = 0
    id_changes: dict[str, int] = field(default_factory=dict)
    probabilistic_links: dict[str, int] = field(default_factory=dict)


def _split_flagged(flagged: DataFrame) -> tuple[DataFrame, DataFrame]:
    blocked = flagged.where(F.col("blocked_reason").isNotNull()).withColumnRenamed("blocked_reason", "reason")
    linked = (
        flagged.where(F.col("blocked_reason").isNull())
        .drop("blocked_reason")
        .withColumn("node", node_key(F.col("id_type"), F.col("id_value")))
    )
    return linked, blocked


def resolve(
    silver: Mapping[str, DataFrame],
    config: IdentityConfig,
    assign_ids: CustomerIdAssigner = assign_minted_ids,
    decisions: DataFrame | None = None,
    probabilistic: DataFrame | None = None,
) -> IdentityFrames:
    """Resolve silver records into customers.

    Not lazy all the way: the connected-components loop runs Spark jobs (one count per round),
    and so does the check of the identifier caps and cannot-link decisions.

    Args:
        silver: silver table name -> DataFrame (see :func:`extract_identifiers`).
        config: never-link rules, identifier caps and graph limits.
        assign_ids: turns components into customer ids; see
            :mod:`cdplake.identity.customer_ids`.
        decisions: reviewers' decisions (:data:`cdplake.identity.limits.DECISIONS_DDL`), or None.
        probabilistic: ``source_l, record_key_l, source_r, record_key_r, match_probability``
            of probabilistically matched record pairs to join on (already above the
            threshold), or None. They join
            deterministic components after every identifier type, within the same limits
            (:func:`cdplake.identity.limits.join_probabilistic`).

    Raises:
        ValueError: a decision row is invalid (unknown decision, missing identifier).
    """
    flagged = flag_never_link(extract_identifiers(silver), config.never_link)
    linked, blocked = _split_flagged(flagged)
    must_edges = cannot = None
    if decisions is not None:
        invalid = check_decisions(decisions).limit(5).collect()
        if invalid:
            raise ValueError(
                f"identity/review_decisions has invalid rows (decision must be one of {list(DECISIONS)}, "
                f"both identifiers and decided_at set), e.g. {[r.asDict() for r in invalid]}"
            )
        current = current_decisions(decisions).localCheckpoint(eager=True)
        must_edges = must_link_edges(current, linked)
        cannot = current.where(F.col("decision") == CANNOT_LINK).select("node_a", "node_b")

    def components_of(linked: DataFrame) -> DataFrame:
        edges = record_edges(linked)
        if must_edges is not None:
            edges = edges.unionByName(must_edges)
        return connected_components(
            linked.select("node"),
            edges,
            max_iterations=config.graph.max_iterations,
            checkpoint_every=config.graph.checkpoint_every,
        )

    components = components_of(linked)
    if config.limits.caps or cannot is not None:
        broken = broken_components(linked, components, config.limits, cannot).localCheckpoint(eager=True)
        if not broken.isEmpty():
            refused = refused_identifiers(
                linked,
                components,
                broken,
                config.limits,
                must_edges=must_edges,
                cannot=cannot,
                graph=config.graph,
            ).withColumnRenamed("reason", "limit_reason")
            columns = flagged.columns
            flagged = (
                flagged.join(refused, ["id_type", "id_value"], "left")
                .withColumn("blocked_reason", F.coalesce("blocked_reason", "limit_reason"))
                .select(*columns)
                .localCheckpoint(eager=True)
            )
            linked, blocked = _split_flagged(flagged)
            if must_edges is not None:
                must_edges = must_link_edges(current, linked)
            components = components_of(linked)
    links = None
    if probabilistic is not None:
        components, links = join_probabilistic(
            linked,
            components,
            probabilistic,
            config.limits,
            cannot=cannot,
            graph=config.graph,
            weak_bridge_probability=config.weak_bridge_probability,
        )
        components = components.localCheckpoint(eager=True)
    customer_map = (
        linked.select("id_type", "id_value", "node")
        .distinct()
        .join(components, "node")
        .transform(assign_ids)
        .select("id_type", "id_value", "customer_id")
    )
    # All identifiers of one record sit in one component, so this is one row per record.
    record_customer = (
        linked.join(customer_map, ["id_type", "id_value"])
        .select("source", "record_key", "customer_id")
        .distinct()
    )
    return IdentityFrames(
        identifiers=flagged,
        blocked=blocked,
        customer_map=customer_map,
        record_customer=record_customer,
        customer_links=explain_links(
            linked, customer_map, record_customer, must_link=must_edges, pairs=probabilistic
        ),
        probabilistic_links=links,
    )


def resolve_identities(
    spark: SparkSession,
    env: EnvConfig,
    run_id: str,
    *,
    config: IdentityConfig | None = None,
    assign_ids: CustomerIdAssigner | None = None,
) -> IdentityResult:
    """Read the silver tables, resolve customers and overwrite the identity tables.

    Writes ``identity/identifiers``, ``identity/blocked_identifiers``,
    ``identity/customer_map``, ``identity/record_customer`` and ``identity/customer_links``
    (each overwritten per run,
    stamped with ``run_id``). Customer ids are kept from the customer_map this run replaces
    (:func:`cdplake.identity.customer_ids.assign_stable_ids`); what changed is appended to
    ``identity/identity_changes`` and merges also to ``identity/customer_id_aliases``, before
    the customer_map is replaced, so a crash in between loses no change.

    Args:
        spark: the session.
        env: the environment (paths, and ``conf_dir`` for ``identity.yaml``).
        run_id: stamped on every row written.
        config: identity settings; loaded from ``env.conf_dir`` by default.
        assign_ids: the customer-id policy; stable ids over the previous customer_map when None.

    Raises:
        FileNotFoundError: a silver table does not exist yet.
        IdentityGraphError: the graph did not converge.
    """
    config = config or load_identity_config(env.conf_dir)
    silver = _store.read_tables(spark, env, "silver", tuple(SOURCES))
    map_path = env.paths.table(IDENTITY_LAYER, "customer_map")
    map_version = table_version(spark, map_path)
    previous = None
    if map_version >= 0:
        previous = (
            spark.read.format("delta")
            .option("versionAsOf", map_version)
            .load(map_path)
            .select("id_type", "id_value", "customer_id")
        )
    decisions_path = env.paths.table(IDENTITY_LAYER, REVIEW_DECISIONS)
    decisions = _store.read(spark, decisions_path) if _store.exists(spark, decisions_path) else None
    pairs = probabilistic_pairs(spark, env) if config.use_probabilistic_edges else None
    frames = resolve(silver, config, assign_ids or assign_stable_ids(previous), decisions, pairs)
    stamp = F.lit(run_id).alias("run_id")
    # Pinned so the change feed and the customer_map write share one assignment; record_customer
    # derives it again from the same inputs (previous map at a fixed version: same ids).
    customer_map = frames.customer_map.localCheckpoint(eager=True)
    links = frames.probabilistic_links
    frames = IdentityFrames(
        frames.identifiers, frames.blocked, customer_map, frames.record_customer, frames.customer_links, links
    )
    changes = identity_changes(previous, customer_map).localCheckpoint(eager=True)
    changed_at = F.current_timestamp().alias("changed_at")
    txn = {"app_id": CHANGES_APP_ID, "version": map_version + 1}
    append(changes.select("*", stamp, changed_at), env.paths.table(IDENTITY_LAYER, "identity_changes"), **txn)
    aliases = changes.where("change = 'merged'").select(
        F.col("related_id").alias("old_id"), "customer_id", F.lit("merged").alias("reason"), stamp, changed_at
    )
    append(aliases, env.paths.table(IDENTITY_LAYER, "customer_id_aliases"), **txn)
    outputs = {
        "identifiers": frames.identifiers.select("*", stamp),
        "blocked_identifiers": frames.blocked.select("*", stamp),
        "customer_map": frames.customer_map.select("*", stamp),
        "record_customer": frames.record_customer.select("*", stamp),
        "customer_links": frames.customer_links.select("*", stamp),
    }
    for name, frame in outputs.items():
        _store.overwrite(frame, env.paths.table(IDENTITY_LAYER, name))

    # Counts come from what was written, so they match the tables exactly.
    written = {name: _store.read(spark, env.paths.table(IDENTITY_LAYER, name)) for name in outputs}
    by_reason = {
        r["reason"]: int(r["count"])
        for r in written["blocked_identifiers"].groupBy("reason").count().collect()
    }
    observed_records = written["identifiers"].select("source", "record_key").distinct().count()
    resolved_records = written["record_customer"].count()
    return IdentityResult(
        customers=written["customer_map"].select("customer_id").distinct().count(),
        identifiers=written["identifiers"].count(),
        records=resolved_records,
        blocked=sum(by_reason.values()),
        blocked_by_reason=dict(sorted(by_reason.items())),
        unresolved_records=observed_records - resolved_records,
        id_changes={r["change"]: int(r["count"]) for r in changes.groupBy("change").count().collect()},
        probabilistic_links=_link_counts(links),
    )


def _link_counts(links: DataFrame | None) -> dict[str, int]:
    if links is None:
        return {}
    counts = {outcome: 0 for outcome in (JOINED, WEAK_BRIDGE, REFUSED)}
    counts.update({r["outcome"]: int(r["count"]) for r in links.groupBy("outcome").count().collect()})
    return counts


def probabilistic_pairs(spark: SparkSession, env: EnvConfig) -> DataFrame | None:
    """Record pairs of ``identity/probabilistic_edges`` at or above the link threshold, or None.

    The threshold is ``threshold_match_probability`` of ``conf/linkage.yaml``; the table is
    what the last scoring run (``cdplake-score-linkage``) wrote.
    """
    from cdplake.config.linkage import load_linkage_config
    from cdplake.identity.probabilistic import EDGES_TABLE

    path = env.paths.table(IDENTITY_LAYER, EDGES_TABLE)
    if not _store.exists(spark, path):
        return None
    threshold = load_linkage_config(env.conf_dir).threshold_match_probability
    return _store.read(spark, path).where(F.col("match_probability") >= threshold)


@dataclass(frozen=True)
class ReviewDecision:
    """One reviewer decision about two identifiers (``id_type`` names as in customer_map).

    Attributes:
        decision: ``must_link``, ``cannot_link`` or ``clear`` (withdraws the pair's last decision).
        a: ``(id_type, id_value)`` of one identifier, e.g. ``("email", "ann@x.com")``.
        b: the other.
        reviewer: who decided.
        note: why, for whoever reads the table later.
    """

    decision: str
    a: tuple[str, str]
    b: tuple[str, str]
    reviewer: str
    note: str = ""


def record_review_decisions(
    spark: SparkSession,
    env: EnvConfig,
    decisions: list[ReviewDecision],
    decided_at: dt.datetime | None = None,
) -> int:
    """Append reviewer decisions to ``identity/review_decisions``; the next identity run applies them.

    Raises:
        ValueError: an unknown decision or identifier type.
    """
    from cdplake.config.identity import IDENTIFIER_TYPES

    when = decided_at or dt.datetime.now(dt.timezone.utc)
    rows = []
    for d in decisions:
        if d.decision not in DECISIONS:
            raise ValueError(f"decision {d.decision!r} is not one of {list(DECISIONS)}")
        for id_type, _ in (d.a, d.b):
            if id_type not in IDENTIFIER_TYPES:
                raise ValueError(f"identifier type {id_type!r} is not one of {list(IDENTIFIER_TYPES)}")
        rows.append((d.decision, *d.a, *d.b, d.reviewer, when, d.note))
    frame = spark.createDataFrame(rows, DECISIONS_DDL)
    frame.write.format("delta").mode("append").save(env.paths.table(IDENTITY_LAYER, REVIEW_DECISIONS))
    return len(rows)
