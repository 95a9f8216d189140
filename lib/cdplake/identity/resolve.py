"""Silver records -> identifiers -> graph -> customer ids, and the identity tables it writes."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdplake.config.identity import IdentityConfig, load_identity_config
from cdplake.identity import _store
from cdplake.identity.customer_ids import (
    CHANGES_DDL,
    CustomerIdAssigner,
    assign_minted_ids,
    assign_stable_ids,
    identity_changes,
)
from cdplake.identity.explain import explain_links
from cdplake.identity.extract import SOURCES, extract_identifiers, flag_never_link
from cdplake.identity.graph import connected_components, node_key, record_edges
from cdplake.identity.incremental import (
    ScopeNotConverged,
    changed_pair_records,
    changed_records,
    pairs_touching,
    resolution_scope,
)
from cdplake.identity.limits import (
    CANNOT_LINK,
    DECISIONS,
    DECISIONS_DDL,
    JOINED,
    MUST_LINK,
    REFUSED,
    WEAK_BRIDGE,
    broken_components,
    check_decisions,
    current_decisions,
    join_probabilistic,
    must_link_edges,
    refused_identifiers,
)
from cdplake.io.delta import append_bookkeeping, replace_rows, table_version

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
        mode: ``full`` or ``incremental``.
        mode_reason: why (``incremental``, ``not_requested``, ``no_previous_run``,
            ``config_changed``, ``decisions_changed``, ``small_lake``, ``scored_pairs_replaced``,
            ``scope_not_converged``, ``scope_too_large``).
        changed_records: records whose identifiers or scored pairs changed since the last
            run (incremental attempts only).
        scope_records: records resolved this run (all of them in a full run).
    """

    customers: int
    identifiers: int
    records: int
    blocked: int
    blocked_by_reason: dict[str, int] = field(default_factory=dict)
    unresolved_records: int = 0
    id_changes: dict[str, int] = field(default_factory=dict)
    probabilistic_links: dict[str, int] = field(default_factory=dict)
    mode: str = "full"
    mode_reason: str = ""
    changed_records: int = 0
    scope_records: int = 0


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
    return resolve_flagged(flagged, config, assign_ids, decisions, probabilistic)


def resolve_flagged(
    flagged: DataFrame,
    config: IdentityConfig,
    assign_ids: CustomerIdAssigner = assign_minted_ids,
    decisions: DataFrame | None = None,
    probabilistic: DataFrame | None = None,
) -> IdentityFrames:
    """:func:`resolve` from identifiers already extracted and flagged by the never-link rules.

    Args:
        flagged: ``source, record_key, id_type, id_value, blocked_reason``
            (:func:`cdplake.identity.extract.flag_never_link`), of all records or of a scope
            closed under links (:mod:`cdplake.identity.incremental`).
        config, assign_ids, decisions, probabilistic: as for :func:`resolve`.
    """
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
    incremental: bool = False,
) -> IdentityResult:
    """Read the silver tables, resolve customers and write the identity tables.

    Writes ``identity/identifiers``, ``identity/blocked_identifiers``,
    ``identity/customer_map``, ``identity/record_customer`` and ``identity/customer_links``
    (stamped with ``run_id``). Customer ids are kept from the customer_map this run replaces
    (:func:`cdplake.identity.customer_ids.assign_stable_ids`); what changed is appended to
    ``identity/identity_changes`` and merges also to ``identity/customer_id_aliases``, before
    the customer_map is replaced, so a crash in between loses no change. Each run appends one
    row to ``identity/resolve_runs`` (mode, why, how many records changed and were resolved).

    A full run resolves every record and overwrites the tables. An incremental run resolves
    only the records that changed since the last run and what they can link to
    (:mod:`cdplake.identity.incremental`) and MERGEs that part into the tables. Both write
    the identifiers table last: it is what the next run compares with, so a run cut off
    midway is redone by the next. It runs in full instead, with the reason in ``resolve_runs``,
    when there is no earlier run, ``identity.yaml`` or the linkage threshold or the review
    decisions changed, the scored pairs were rewritten from nothing, or the scope would cover
    more than ``incremental.max_scope_fraction`` of the records.

    Args:
        spark: the session.
        env: the environment (paths, and ``conf_dir`` for ``identity.yaml``).
        run_id: stamped on every row written.
        config: identity settings; loaded from ``env.conf_dir`` by default.
        assign_ids: the customer-id policy; stable ids over the previous customer_map when
            None. A custom policy always runs in full.
        incremental: try an incremental run.

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
    decisions_version = table_version(spark, decisions_path)
    decisions = _store.read(spark, decisions_path) if decisions_version >= 0 else None
    edges_version, pairs, threshold = -1, None, None
    if config.use_probabilistic_edges:
        edges_version, pairs, threshold = _pinned_pairs(spark, env)
    flagged = flag_never_link(extract_identifiers(silver), config.never_link).localCheckpoint(eager=True)
    state = RunState(
        decisions_version=decisions_version,
        edges_version=edges_version,
        config_hash=hashlib.sha256(repr((config, threshold)).encode()).hexdigest()[:16],
    )
    plan = ScopePlan(None, "not_requested")
    if incremental and assign_ids is None:
        plan = _plan_scope(spark, env, config, flagged, state, pairs, decisions, threshold)
    stamp = F.lit(run_id).alias("run_id")
    changed_at = F.current_timestamp().alias("changed_at")
    txn = {"app_id": CHANGES_APP_ID, "version": map_version + 1}

    def append_changes(before: DataFrame | None, after: DataFrame) -> DataFrame:
        changes = identity_changes(before, after).localCheckpoint(eager=True)
        # Both gain a commit per run or stream cycle: compacted as they grow.
        append_bookkeeping(
            changes.select("*", stamp, changed_at), env.paths.table(IDENTITY_LAYER, "identity_changes"), **txn
        )
        aliases = changes.where("change = 'merged'").select(
            F.col("related_id").alias("old_id"),
            "customer_id",
            F.lit("merged").alias("reason"),
            stamp,
            changed_at,
        )
        append_bookkeeping(aliases, env.paths.table(IDENTITY_LAYER, "customer_id_aliases"), **txn)
        return changes

    if plan.scope is None:
        frames = resolve_flagged(flagged, config, assign_ids or assign_stable_ids(previous), decisions, pairs)
        # Pinned so the change feed and the customer_map write share one assignment; record_customer
        # derives it again from the same inputs (previous map at a fixed version: same ids).
        customer_map = frames.customer_map.localCheckpoint(eager=True)
        changes = append_changes(previous, customer_map)
        outputs = {
            "identifiers": frames.identifiers,
            "blocked_identifiers": frames.blocked,
            "customer_map": customer_map,
            "record_customer": frames.record_customer,
            "customer_links": frames.customer_links,
        }
        for name in IDENTITY_OUTPUTS:  # the identifiers last, as in an incremental run
            _store.overwrite(outputs[name].select("*", stamp), env.paths.table(IDENTITY_LAYER, name))
        links, scope_records = frames.probabilistic_links, None
    else:
        scope_records = plan.scope_records
        changes, links = _resolve_scope(
            spark, env, config, flagged, plan.scope, previous, decisions, pairs, stamp, append_changes
        )
    records = (
        plan.records
        if plan.records is not None
        else flagged.select("source", "record_key").distinct().count()
    )
    run_row = (
        run_id,
        "full" if plan.scope is None else "incremental",
        plan.reason,
        plan.changed,
        records if scope_records is None else scope_records,
        records,
        state.decisions_version,
        state.edges_version,
        state.config_hash,
    )
    # A plain append: a run redone after a crash is a run of its own.
    # Compacted as it grows: the stream adds a row per cycle (io.delta.append_bookkeeping).
    append_bookkeeping(
        spark.createDataFrame([run_row], RUNS_DDL).withColumn("resolved_at", F.current_timestamp()),
        env.paths.table(IDENTITY_LAYER, RUNS_TABLE),
    )

    # Counts come from what was written, so they match the tables exactly.
    written = {name: _store.read(spark, env.paths.table(IDENTITY_LAYER, name)) for name in IDENTITY_OUTPUTS}
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
        mode="full" if plan.scope is None else "incremental",
        mode_reason=plan.reason,
        changed_records=plan.changed,
        scope_records=records if scope_records is None else scope_records,
    )


# The tables an identity run writes, in the order it writes them (full or incremental): the
# identifiers last, because the next run finds what changed by comparing with them.
IDENTITY_OUTPUTS = ("customer_map", "record_customer", "blocked_identifiers", "customer_links", "identifiers")
# One row per identity run: how it ran and the inputs the next incremental run compares with.
RUNS_TABLE = "resolve_runs"
RUNS_DDL = (
    "run_id STRING, mode STRING, reason STRING, changed_records BIGINT, scope_records BIGINT, "
    "records BIGINT, decisions_version BIGINT, edges_version BIGINT, config_hash STRING"
)
_KEYS = {
    "customer_map": ["id_type", "id_value"],
    "record_customer": ["source", "record_key"],
    "blocked_identifiers": ["source", "record_key", "id_type", "id_value"],
    "customer_links": ["customer_id", "link_type", "rule", "item_l", "item_r"],
    "identifiers": ["source", "record_key", "id_type", "id_value"],
}


@dataclass(frozen=True)
class RunState:
    """What an incremental run must find unchanged since the last run (else it runs in full)."""

    decisions_version: int
    edges_version: int
    config_hash: str


@dataclass(frozen=True)
class ScopePlan:
    """The records an incremental run resolves (None: run in full), and why."""

    scope: DataFrame | None
    reason: str
    changed: int = 0
    records: int | None = None  # all records, when the plan counted them
    scope_records: int = 0


def _pinned_pairs(spark: SparkSession, env: EnvConfig) -> tuple[int, DataFrame | None, float | None]:
    """``(version, pairs at or above the threshold at that version, threshold)`` of the scored pairs."""
    from cdplake.config.linkage import load_linkage_config
    from cdplake.identity.probabilistic import EDGES_TABLE

    path = env.paths.table(IDENTITY_LAYER, EDGES_TABLE)
    version = table_version(spark, path)
    if version < 0:
        return -1, None, None
    threshold = load_linkage_config(env.conf_dir).threshold_match_probability
    pairs = spark.read.format("delta").option("versionAsOf", version).load(path)
    return version, pairs.where(F.col("match_probability") >= threshold), threshold


def _plan_scope(
    spark: SparkSession,
    env: EnvConfig,
    config: IdentityConfig,
    flagged: DataFrame,
    state: RunState,
    pairs: DataFrame | None,
    decisions: DataFrame | None,
    threshold: float | None,
) -> ScopePlan:
    from cdplake.identity.probabilistic import EDGES_TABLE

    runs_path = env.paths.table(IDENTITY_LAYER, RUNS_TABLE)
    tables = [env.paths.table(IDENTITY_LAYER, name) for name in IDENTITY_OUTPUTS]
    if not all(_store.exists(spark, p) for p in [runs_path, *tables]):
        return ScopePlan(None, "no_previous_run")
    last = _store.read(spark, runs_path).orderBy(F.desc("resolved_at")).first()
    if last["config_hash"] != state.config_hash:
        return ScopePlan(None, "config_changed")
    if last["decisions_version"] != state.decisions_version:
        return ScopePlan(None, "decisions_changed")
    total = flagged.select("source", "record_key").distinct().count()
    if total < config.incremental.min_records:
        return ScopePlan(None, "small_lake", records=total)
    seeds = changed_records(flagged, _store.read(spark, env.paths.table(IDENTITY_LAYER, "identifiers")))
    if last["edges_version"] != state.edges_version:
        if last["edges_version"] < 0 or pairs is None:
            return ScopePlan(None, "scored_pairs_replaced")
        before = (
            spark.read.format("delta")
            .option("versionAsOf", int(last["edges_version"]))
            .load(env.paths.table(IDENTITY_LAYER, EDGES_TABLE))
            .where(F.col("match_probability") >= threshold)
        )
        seeds = seeds.unionByName(changed_pair_records(pairs, before)).distinct()
    seeds = seeds.localCheckpoint(eager=True)
    changed = seeds.count()
    must = None
    if decisions is not None:
        must = current_decisions(decisions).where(F.col("decision") == MUST_LINK).select("node_a", "node_b")
    try:
        scope = resolution_scope(
            seeds,
            flagged.where(F.col("blocked_reason").isNull()),
            _store.read(spark, env.paths.table(IDENTITY_LAYER, "record_customer")),
            pairs=pairs,
            must_link=must,
            max_rounds=config.incremental.max_rounds,
        )
    except ScopeNotConverged:
        return ScopePlan(None, "scope_not_converged", changed, total)
    in_scope = scope.count()
    if in_scope > config.incremental.max_scope_fraction * total:
        return ScopePlan(None, "scope_too_large", changed, total)
    return ScopePlan(scope, "incremental", changed, total, in_scope)


def _resolve_scope(
    spark: SparkSession,
    env: EnvConfig,
    config: IdentityConfig,
    flagged: DataFrame,
    scope: DataFrame,
    previous: DataFrame | None,
    decisions: DataFrame | None,
    pairs: DataFrame | None,
    stamp: Column,
    append_changes: Callable[[DataFrame | None, DataFrame], DataFrame],
) -> tuple[DataFrame, DataFrame | None]:
    """Resolve the records of ``scope`` and MERGE them into the identity tables.

    Returns:
        ``(changes, probabilistic links)``.
    """
    if scope.isEmpty():
        return spark.createDataFrame([], CHANGES_DDL), None
    record = ["source", "record_key"]
    table = {name: env.paths.table(IDENTITY_LAYER, name) for name in IDENTITY_OUTPUTS}
    current = {name: _store.read(spark, path) for name, path in table.items()}
    old_customers = (
        current["record_customer"].join(scope, record, "left_semi").select("customer_id").distinct()
    ).localCheckpoint(eager=True)
    before = None if previous is None else previous.join(old_customers, "customer_id", "left_semi")
    scoped_pairs = None
    if pairs is not None:
        scoped_pairs = pairs_touching(pairs, scope, both=True)
    frames = resolve_flagged(
        flagged.join(scope, record, "left_semi"), config, assign_stable_ids(before), decisions, scoped_pairs
    )
    customer_map = frames.customer_map.localCheckpoint(eager=True)
    changes = append_changes(before, customer_map)
    customers = old_customers.unionByName(customer_map.select("customer_id")).distinct()
    new = {
        "customer_map": customer_map,
        "record_customer": frames.record_customer,
        "blocked_identifiers": frames.blocked,
        "customer_links": frames.customer_links,
        "identifiers": frames.identifiers,
    }
    for name in IDENTITY_OUTPUTS:
        if name in ("customer_map", "customer_links"):
            old = current[name].join(customers, "customer_id", "left_semi")
        else:
            old = current[name].join(scope, record, "left_semi")
        rows = new[name].select("*", stamp).localCheckpoint(eager=True)
        replace_rows(rows.select(*current[name].columns), old, table[name], _KEYS[name])
    return changes, frames.probabilistic_links


def _link_counts(links: DataFrame | None) -> dict[str, int]:
    if links is None:
        return {}
    counts = {outcome: 0 for outcome in (JOINED, WEAK_BRIDGE, REFUSED)}
    counts.update({r["outcome"]: int(r["count"]) for r in links.groupBy("outcome").count().collect()})
    return counts


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
