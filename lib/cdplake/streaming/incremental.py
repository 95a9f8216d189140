"""Incremental gold: recompute only the customers new data touched, and merge them into gold.

Which customers a cycle touches (:func:`touched_customers`):

* records new or changed in a silver table since the last committed cycle: the rows of the
  table's current version whose ``(key, _batch_id)`` is not in the version the last cycle
  read (Delta time travel; a CRM update brings a new ``_batch_id``), mapped to customers by
  the new identity/record_customer;
* records whose customer id changed between the identity the last cycle used and the new
  one (identity is re-resolved in full each cycle, and merging two components re-mints an
  id): both the old id (if it still exists) and the new one are recomputed; an old id that
  no longer exists is *removed* from the profile and its open stays are closed;
* customers with real-time activity (a non-zero ``product_views_1h`` stored, or views in
  the current window), because their value moves with the clock even without new records;
* customers whose *ranked* features moved (:data:`RANKED_COLUMNS`: RFM quintile scores and
  cell rank each buyer against all buyers, so a new big spender can lower the monetary score
  of someone with no new record): the scores are computed from the previous cycle's inputs
  (silver orders and identity at the recorded versions, the recorded ``as_of``) and from
  this cycle's, and every customer whose scores differ is recomputed. Both sides come from
  recorded table versions, not from the stored profile, so a cycle redone after a crash
  finds the same customers as the attempt that died.

Time windows of untouched customers (``product_views_30d``, ``days_since_last_order``...)
age only when they are recomputed: schedule a full ``cdplake-build-gold`` (e.g. nightly)
next to the stream; it writes the same tables.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdplake.config.features import FeaturesConfig, RfmSettings
from cdplake.config.identity import NeverLinkRules
from cdplake.config.segments import ConsentRules, SegmentsConfig
from cdplake.features.columns import as_utc, ts_lit
from cdplake.features.profile import with_customer
from cdplake.features.realtime import current_window_end, with_realtime_features
from cdplake.features.rfm import rfm_features
from cdplake.identity.extract import SOURCES
from cdplake.io.delta import read_table, table_exists, table_version
from cdplake.privacy.consent import enforce_consent
from cdplake.segments import build_profile
from cdplake.segments.evaluate import MEMBER_COLUMNS, evaluate_segments
from cdplake.segments.membership import MEMBERSHIP_DDL, ensure_table, entered_values, upsert_summary

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdplake.config import EnvConfig
    from cdplake.streaming.progress import CycleProgress

GOLD = "gold"


def silver_versions(spark: SparkSession, env: EnvConfig) -> dict[str, int]:
    """Current Delta version of every silver table identity reads (-1: not created yet)."""
    return {name: table_version(spark, env.paths.table("silver", name)) for name in SOURCES}


def _at_version(spark: SparkSession, path: str, version: int) -> DataFrame:
    return spark.read.format("delta").option("versionAsOf", version).load(path)


def changed_records(spark: SparkSession, path: str, key: str, before: int, now: int) -> DataFrame:
    """``record_key`` of rows in version ``now`` of a silver table that version ``before`` lacked.

    A row counts as changed when its ``(key, _batch_id)`` pair is new: an inserted key, or a
    key updated from a later bronze batch. ``before = -1`` means every row.
    """
    current = _at_version(spark, path, now).select(F.col(key).cast("string").alias("record_key"), "_batch_id")
    if before < 0:
        return current.select("record_key").distinct()
    old = _at_version(spark, path, before).select(F.col(key).cast("string").alias("record_key"), "_batch_id")
    return current.join(old, ["record_key", "_batch_id"], "left_anti").select("record_key").distinct()


# Profile columns whose value depends on other customers' data (ranks over all buyers).
RANKED_COLUMNS = ("rfm_r_score", "rfm_f_score", "rfm_m_score", "rfm_cell")


def ranked_features(
    orders: DataFrame, record_customer: DataFrame, as_of: dt.datetime, rfm: RfmSettings
) -> DataFrame:
    """``customer_id`` and :data:`RANKED_COLUMNS` of every buyer, ranked against all buyers."""
    buyers = with_customer(orders, record_customer, "orders", "order_id")
    return rfm_features(buyers, as_of, rfm).select("customer_id", *RANKED_COLUMNS)


def rank_moved(before: DataFrame, after: DataFrame) -> DataFrame:
    """``customer_id`` whose ranked features differ between two :func:`ranked_features` frames.

    A customer on one side only counts as moved (a first order, or an id that merged away).
    """
    same = F.lit(True)
    for c in RANKED_COLUMNS:
        same = same & F.col(f"b.{c}").eqNullSafe(F.col(f"a.{c}"))
    joined = before.alias("b").join(
        after.alias("a"), F.col("b.customer_id") == F.col("a.customer_id"), "full_outer"
    )
    return (
        joined.where(~same)
        .select(F.coalesce("a.customer_id", "b.customer_id").alias("customer_id"))
        .distinct()
    )


def ranks_moved_since(
    spark: SparkSession,
    env: EnvConfig,
    previous: CycleProgress,
    versions_now: Mapping[str, int],
    record_customer: DataFrame,
    identity_version: int,
    as_of: dt.datetime,
    rfm: RfmSettings,
) -> DataFrame | None:
    """Customers whose ranked features differ between ``previous``'s inputs and this cycle's.

    None when there are no orders now, or when the orders, the identity version
    (``identity_version`` is the one ``record_customer`` was read at) and ``as_of`` are all
    what ``previous`` recorded: then nothing can have moved. The previous side reads silver
    orders and identity/record_customer at the versions ``previous`` recorded, at its ``as_of``.
    """
    orders_path = env.paths.table("silver", "orders")
    now = versions_now.get("orders", -1)
    before_version = previous.silver_versions.get("orders", -1)
    before_as_of = as_utc(previous.as_of) if previous.as_of else as_of
    unchanged = (before_version, previous.identity_version, before_as_of) == (now, identity_version, as_of)
    if now < 0 or unchanged:
        return None
    after = ranked_features(_at_version(spark, orders_path, now), record_customer, as_of, rfm)
    if before_version < 0 or previous.identity_version < 0:
        return after.select("customer_id")
    old_map = _at_version(spark, env.paths.table("identity", "record_customer"), previous.identity_version)
    before = ranked_features(_at_version(spark, orders_path, before_version), old_map, before_as_of, rfm)
    return rank_moved(before, after)


@dataclass(frozen=True)
class Touched:
    """Customers a cycle recomputes and customer ids it removes (both ``customer_id`` frames)."""

    recompute: DataFrame
    removed: DataFrame


def touched_customers(
    spark: SparkSession,
    env: EnvConfig,
    previous: CycleProgress,
    versions_now: Mapping[str, int],
    record_customer: DataFrame,
    realtime_active: DataFrame,
    ranks_moved: DataFrame | None = None,
) -> Touched:
    """Customers touched since ``previous`` (see the module docstring for the four reasons).

    Args:
        spark: the session.
        env: the environment (paths).
        previous: the last committed cycle (its silver and identity versions).
        versions_now: silver versions this cycle reads.
        record_customer: identity/record_customer as resolved this cycle.
        realtime_active: ``customer_id`` of customers whose real-time features may move.
        ranks_moved: ``customer_id`` of customers whose ranked features moved
            (:func:`ranks_moved_since`); None when nothing is ranked.
    """
    rc_path = env.paths.table("identity", "record_customer")
    new_map = record_customer.select("source", "record_key", "customer_id")
    parts: list[DataFrame] = [realtime_active.select("customer_id")]
    if ranks_moved is not None:
        parts.append(ranks_moved.select("customer_id"))
    for table, key in SOURCES.items():
        before, now = previous.silver_versions.get(table, -1), versions_now.get(table, -1)
        if now < 0 or now == before:
            continue
        keys = changed_records(spark, env.paths.table("silver", table), key, before, now)
        parts.append(new_map.where(F.col("source") == table).join(keys, "record_key").select("customer_id"))
    old_map = _at_version(spark, rc_path, previous.identity_version).select(
        "source", "record_key", F.col("customer_id").alias("old_id")
    )
    moved = new_map.join(old_map, ["source", "record_key"], "full_outer").where(
        ~F.col("customer_id").eqNullSafe(F.col("old_id"))
    )
    parts.append(moved.where(F.col("customer_id").isNotNull()).select("customer_id"))
    existing = new_map.select("customer_id").distinct()
    old_ids = moved.where(F.col("old_id").isNotNull()).select(F.col("old_id").alias("customer_id")).distinct()
    parts.append(old_ids.join(existing, "customer_id", "left_semi"))
    recompute = parts[0]
    for part in parts[1:]:
        recompute = recompute.unionByName(part)
    return Touched(
        recompute=recompute.distinct(),
        removed=old_ids.join(existing, "customer_id", "left_anti"),
    )


def compute_profiles(
    silver: Mapping[str, DataFrame],
    record_customer: DataFrame,
    customer_map: DataFrame,
    customers: DataFrame | None,
    as_of: dt.datetime,
    rules: NeverLinkRules | None,
    signals: DataFrame | None,
    slide_seconds: int,
    *,
    features: FeaturesConfig | None = None,
    consent_rules: ConsentRules | None = None,
) -> DataFrame:
    """Profile rows (features, consent, real-time features) of ``customers``; all when None.

    The one seam between the stream and the feature code. The feature layer computes only
    the given customers, while ranks such as RFM scores are still taken over every buyer, so
    a recomputed row equals the row a full build would write.
    """
    profile = build_profile(
        silver,
        record_customer,
        as_of,
        rules,
        features=features,
        consent_rules=consent_rules,
        customers=customers,
    )
    return with_realtime_features(profile, signals, customer_map, as_of, slide_seconds)


def realtime_active(
    signals: DataFrame | None, customer_map: DataFrame, moments: Sequence[dt.datetime], slide_seconds: int
) -> DataFrame:
    """Customers with product views in the window current at any of ``moments``.

    Called with this cycle's and the last committed cycle's ``as_of``: a customer whose
    stored ``product_views_1h`` is non-zero had views in the window of the cycle that stored
    it, so it is recomputed by the next cycle and drops back to 0 there. Derived from the
    signals table only (not from the stored profile) so a cycle redone after a crash picks
    the same customers as the attempt that died.
    """
    spark = customer_map.sparkSession
    if signals is None or not moments:
        return spark.createDataFrame([], "customer_id STRING")
    ends = sorted({current_window_end(m, slide_seconds) for m in moments})
    ids = signals.where(F.col("window_end").isin([ts_lit(e) for e in ends])).select("id_type", "id_value")
    return customer_map.join(ids, ["id_type", "id_value"], "left_semi").select("customer_id").distinct()


def merge_profiles(spark: SparkSession, path: str, profiles: DataFrame, removed: DataFrame) -> None:
    """Upsert recomputed profile rows and delete removed customer ids, in one commit."""
    from delta.tables import DeltaTable

    columns = profiles.columns
    source = profiles.withColumn("_remove", F.lit(False)).unionByName(
        removed.select("customer_id", F.lit(True).alias("_remove")), allowMissingColumns=True
    )
    values = {c: F.col(f"s.`{c}`") for c in columns}
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(source.alias("s"), "t.customer_id = s.customer_id")
        .whenMatchedDelete(condition="s._remove")
        .whenMatchedUpdate(condition="NOT s._remove", set=values)
        .whenNotMatchedInsert(condition="NOT s._remove", values=values)
        .execute()
    )


def merge_membership_scoped(
    spark: SparkSession,
    path: str,
    members: DataFrame,
    scope: DataFrame,
    segment_ids: Sequence[str],
    run_id: str,
    run_at: dt.datetime,
    *,
    open_stays: DataFrame | None = None,
) -> tuple[int, int]:
    """Like :func:`cdplake.segments.merge_membership`, but only for the customers in ``scope``.

    Open stays of ``scope`` customers in ``segment_ids`` that ``members`` no longer holds are
    closed at ``run_at``; members without an open stay get a new one. Customers outside
    ``scope`` are not looked at. Idempotent: replaying the same input finds nothing to do,
    and then commits nothing.

    Args:
        open_stays: the table's open stays of ``segment_ids`` as the caller already read
            them (pinned); read here when None.

    Returns:
        Stays opened and stays closed.
    """
    from delta.tables import DeltaTable

    ensure_table(spark, path, MEMBERSHIP_DDL, change_data_feed=True)
    stay = ["segment_id", "customer_id", "definition_version"]
    if open_stays is None:
        open_stays = read_table(spark, path).where(
            F.col("is_member") & F.col("segment_id").isin(list(segment_ids))
        )
    opened = open_stays.join(scope.select("customer_id").distinct(), "customer_id", "left_semi")
    new = members.select(*MEMBER_COLUMNS)
    to_close = opened.join(new, stay, "left_anti").select(
        "segment_id", "customer_id", "entered_at", F.lit("close").alias("_action")
    )
    to_open = new.join(opened, stay, "left_anti").withColumn("_action", F.lit("open"))
    # Pin the changes: the MERGE rewrites the table this source was computed from.
    source = to_close.unionByName(to_open, allowMissingColumns=True).localCheckpoint(eager=True)
    counts = {
        r["_action"]: int(r["n"]) for r in source.groupBy("_action").agg(F.count("*").alias("n")).collect()
    }
    opened, closed = counts.get("open", 0), counts.get("close", 0)
    if opened + closed == 0:
        return 0, 0  # nothing to change: no commit
    at = ts_lit(run_at)
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(
            source.alias("s"),
            "s._action = 'close' AND t.is_member AND t.segment_id = s.segment_id "
            "AND t.customer_id = s.customer_id AND t.entered_at = s.entered_at",
        )
        .whenMatchedUpdate(set={"exited_at": at, "is_member": F.lit(False), "run_id": F.lit(run_id)})
        .whenNotMatchedInsert(
            condition="s._action = 'open'",
            values=entered_values(at, run_id),
        )
        .execute()
    )
    return opened, closed


def members_of(profile: DataFrame, segments: SegmentsConfig) -> tuple[DataFrame, DataFrame]:
    """``(allowed, excluded)`` members of every segment over ``profile``, consent applied."""
    qualified = evaluate_segments(profile, segments.segments)
    return enforce_consent(qualified, profile, segments.segments, segments.purposes)


def write_summary(
    spark: SparkSession, env: EnvConfig, segments: SegmentsConfig, run_id: str, as_of: dt.datetime
) -> dict[str, int]:
    """Upsert one gold/segment_summary row per segment for this cycle; returns the sizes.

    ``size`` is the segment's open stays after the cycle; ``excluded_no_consent`` evaluates
    the conditions over the whole stored profile (a scan, no feature recomputation).
    """
    membership = read_table(spark, env.paths.table(GOLD, "segment_membership"))
    counted = membership.where("is_member").groupBy("segment_id").count().collect()
    sizes = {r["segment_id"]: int(r["count"]) for r in counted}
    profile = read_table(spark, env.paths.table(GOLD, "customer_profile"))
    _, excluded = members_of(profile, segments)
    left_out = {r["segment_id"]: int(r["excluded_no_consent"]) for r in excluded.collect()}
    definitions = segments.segments
    if definitions:
        rows = [
            (run_id, d.id, d.version, sizes.get(d.id, 0), left_out.get(d.id, 0), as_of) for d in definitions
        ]
        summary = spark.createDataFrame(
            rows,
            "run_id STRING, segment_id STRING, definition_version INT, size BIGINT, "
            "excluded_no_consent BIGINT, computed_at TIMESTAMP",
        )
        upsert_summary(spark, env.paths.table(GOLD, "segment_summary"), summary)
    return {d.id: sizes.get(d.id, 0) for d in definitions}


def profile_needs_rebuild(spark: SparkSession, path: str, columns: Sequence[str]) -> bool:
    """True when there is no profile table or its columns differ from what the code computes."""
    if not table_exists(spark, path):
        return True
    return list(read_table(spark, path).columns) != list(columns)
