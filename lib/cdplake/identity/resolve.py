"""Silver records -> identifiers -> graph -> customer ids, and the identity tables it writes."""

from __future__ import annotations

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
from cdplake.identity.extract import SOURCES, extract_identifiers, flag_never_link
from cdplake.identity.graph import connected_components, node_key, record_edges
from cdplake.io.delta import append, table_version

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdplake.config import EnvConfig

IDENTITY_LAYER = "identity"
# Appends to identity_changes / customer_id_aliases carry this txnAppId and, as txnVersion,
# the customer_map version the run replaces + 1: a run redone after a crash appends nothing twice.
CHANGES_APP_ID = "cdplake.identity.changes"


@dataclass(frozen=True)
class IdentityFrames:
    """What identity resolution produces, before anything is written.

    Attributes:
        identifiers: every observed identifier with ``blocked_reason`` (null = linked).
        blocked: identifiers a never-link rule kept out of the graph, with ``reason``.
        customer_map: ``id_type, id_value, customer_id`` for every linked identifier.
        record_customer: ``source, record_key, customer_id`` for every record with at least
            one linked identifier.
    """

    identifiers: DataFrame
    blocked: DataFrame
    customer_map: DataFrame
    record_customer: DataFrame


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
    """

    customers: int
    identifiers: int
    records: int
    blocked: int
    blocked_by_reason: dict[str, int] = field(default_factory=dict)
    unresolved_records: int = 0
    id_changes: dict[str, int] = field(default_factory=dict)


def resolve(
    silver: Mapping[str, DataFrame],
    config: IdentityConfig,
    assign_ids: CustomerIdAssigner = assign_minted_ids,
) -> IdentityFrames:
    """Resolve silver records into customers.

    Not lazy all the way: the connected-components loop runs Spark jobs (one count per round).

    Args:
        silver: silver table name -> DataFrame (see :func:`extract_identifiers`).
        config: never-link rules and graph limits.
        assign_ids: turns components into customer ids; see
            :mod:`cdplake.identity.customer_ids`.
    """
    flagged = flag_never_link(extract_identifiers(silver), config.never_link)
    blocked = flagged.where(F.col("blocked_reason").isNotNull()).withColumnRenamed("blocked_reason", "reason")
    linked = (
        flagged.where(F.col("blocked_reason").isNull())
        .drop("blocked_reason")
        .withColumn("node", node_key(F.col("id_type"), F.col("id_value")))
    )
    components = connected_components(
        linked.select("node"),
        record_edges(linked),
        max_iterations=config.graph.max_iterations,
        checkpoint_every=config.graph.checkpoint_every,
    )
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
    ``identity/customer_map`` and ``identity/record_customer`` (each overwritten per run,
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
    frames = resolve(silver, config, assign_ids or assign_stable_ids(previous))
    stamp = F.lit(run_id).alias("run_id")
    # Pinned so the change feed and the customer_map write share one assignment; record_customer
    # derives it again from the same inputs (previous map at a fixed version: same ids).
    customer_map = frames.customer_map.localCheckpoint(eager=True)
    frames = IdentityFrames(frames.identifiers, frames.blocked, customer_map, frames.record_customer)
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
    )
