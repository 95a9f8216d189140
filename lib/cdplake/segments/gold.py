"""The gold layer: customer profiles and their history, consent-gated segments, membership history
and summary."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdplake.config.features import FeaturesConfig, load_features_config
from cdplake.config.identity import NeverLinkRules, load_identity_config
from cdplake.config.segments import ConsentRules, SegmentsConfig, load_segments_config
from cdplake.features.columns import as_utc, ts_lit
from cdplake.features.profile import ATTRIBUTES, customer_features
from cdplake.features.realtime import with_realtime_features

# The identity layer's private Delta helpers stand in for cdplake.io.delta until it lands;
# both layers then swap in one place.
from cdplake.identity._store import exists, overwrite, read, read_tables
from cdplake.identity.extract import SOURCES
from cdplake.privacy.consent import customer_consent, enforce_consent, with_consent
from cdplake.segments.evaluate import MEMBER_COLUMNS, evaluate_segments
from cdplake.segments.membership import merge_membership, upsert_summary
from cdplake.segments.profile_history import HISTORY_TABLE, merge_profile_history

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdplake.config import EnvConfig

GOLD_LAYER = "gold"


@dataclass(frozen=True)
class GoldResult:
    """What one gold run published.

    Attributes:
        profiles: rows of gold/customer_profile.
        segment_sizes: segment id -> members published this run (consent applied).
        excluded: segment id -> customers who qualified but lacked consent for its purpose.
    """

    profiles: int
    segment_sizes: dict[str, int]
    excluded: dict[str, int]


def build_profile(
    silver: Mapping[str, DataFrame],
    record_customer: DataFrame,
    as_of: dt.datetime,
    rules: NeverLinkRules | None = None,
    *,
    features: FeaturesConfig | None = None,
    consent_rules: ConsentRules | None = None,
    customers: DataFrame | None = None,
) -> DataFrame:
    """Features plus consent flags, one row per customer (without run columns).

    Args:
        silver: the silver tables.
        record_customer: identity/record_customer.
        as_of: evaluation time.
        rules: never-link rules (placeholder emails are not valid).
        features: ``conf/features.yaml``; built-in features only when omitted.
        consent_rules: where an opt-in is required; everywhere when omitted.
        customers: only these customers (``customer_id``), e.g. a micro-batch's.
    """
    profile = customer_features(silver, record_customer, as_of, customers=customers, config=features)
    consent_rc = record_customer
    if customers is not None:
        consent_rc = record_customer.join(
            customers.select("customer_id").distinct(), "customer_id", "left_semi"
        )
    return with_consent(profile, customer_consent(silver, consent_rc), rules, consent_rules)


def _with_realtime(spark: SparkSession, env: EnvConfig, profile: DataFrame, as_of: dt.datetime) -> DataFrame:
    """Add product_views_1h from gold/realtime_signals (written by the stream; 0 without it)."""
    from cdplake.config.streaming import load_streaming_config

    signals_path = env.paths.table(GOLD_LAYER, "realtime_signals")
    if not exists(spark, signals_path):
        return with_realtime_features(profile, None, None, as_of, 1)
    signals = read(spark, signals_path)
    customer_map = read_tables(spark, env, "identity", ("customer_map",))["customer_map"]
    slide = load_streaming_config(env.conf_dir).signals.slide_seconds
    return with_realtime_features(profile, signals, customer_map, as_of, slide)


def build_gold(
    spark: SparkSession,
    env: EnvConfig,
    run_id: str,
    as_of: dt.datetime,
    *,
    segments: SegmentsConfig | None = None,
    rules: NeverLinkRules | None = None,
    features: FeaturesConfig | None = None,
) -> GoldResult:
    """Build gold/customer_profile and its history, update segment membership, append the summary.

    Reads the silver tables and identity/record_customer. The profile is overwritten; changes
    of its golden attributes are merged into gold/customer_profile_history (versions opened
    and closed at ``as_of``, customers no longer in the profile closed); members are merged
    into gold/segment_membership (entries and exits at ``as_of``); one row per segment is
    upserted into gold/segment_summary for ``run_id``.

    Args:
        spark: the session.
        env: the environment (paths; ``conf_dir`` for ``segments.yaml`` and ``identity.yaml``).
        run_id: stamped on every row written.
        as_of: evaluation time of the windows and of membership changes (naive means UTC).
        segments: segment definitions; loaded from ``env.conf_dir`` by default.
        rules: never-link rules (placeholder emails are not valid emails); loaded from
            ``env.conf_dir`` by default.
        features: declared traits and feature settings; ``features.yaml`` in
            ``env.conf_dir`` by default.

    Raises:
        FileNotFoundError: a silver or identity table does not exist yet.
        SegmentDefinitionError: a segment condition does not compile.
    """
    as_of = as_utc(as_of)
    segments = segments or load_segments_config(env.conf_dir)
    rules = rules or load_identity_config(env.conf_dir).never_link
    features = features or load_features_config(env.conf_dir)
    silver = read_tables(spark, env, "silver", tuple(SOURCES))
    record_customer = read_tables(spark, env, "identity", ("record_customer",))["record_customer"]

    profile_path = env.paths.table(GOLD_LAYER, "customer_profile")
    profile = build_profile(
        silver, record_customer, as_of, rules, features=features, consent_rules=segments.consent
    )
    profile = _with_realtime(spark, env, profile, as_of).select(
        "*", ts_lit(as_of).alias("as_of"), F.lit(run_id).alias("run_id")
    )
    overwrite(profile, profile_path)
    # Segments and the history read the written profile rather than recomputing the feature joins.
    profile = read(spark, profile_path)
    merge_profile_history(
        spark,
        env.paths.table(GOLD_LAYER, HISTORY_TABLE),
        profile.select("customer_id", *ATTRIBUTES),
        as_of,
        run_id,
    )

    definitions = segments.segments
    qualified = evaluate_segments(profile, definitions)
    allowed, excluded = enforce_consent(qualified, profile, definitions, segments.purposes)
    # Pin the members: the MERGE and the counts must see the same rows.
    allowed = allowed.select(*MEMBER_COLUMNS).localCheckpoint(eager=True)
    merge_membership(
        spark,
        env.paths.table(GOLD_LAYER, "segment_membership"),
        allowed,
        [d.id for d in definitions],
        run_id,
        as_of,
    )

    sizes = {r["segment_id"]: int(r["count"]) for r in allowed.groupBy("segment_id").count().collect()}
    excluded_counts = {r["segment_id"]: int(r["excluded_no_consent"]) for r in excluded.collect()}
    segment_sizes = {d.id: sizes.get(d.id, 0) for d in definitions}
    excluded_by_segment = {d.id: excluded_counts.get(d.id, 0) for d in definitions}
    if definitions:
        summary = spark.createDataFrame(
            [
                (run_id, d.id, d.version, segment_sizes[d.id], excluded_by_segment[d.id], as_of)
                for d in definitions
            ],
            "run_id STRING, segment_id STRING, definition_version INT, size BIGINT, "
            "excluded_no_consent BIGINT, computed_at TIMESTAMP",
        )
        upsert_summary(spark, env.paths.table(GOLD_LAYER, "segment_summary"), summary)
    return GoldResult(
        profiles=profile.count(),
        segment_sizes=segment_sizes,
        excluded=excluded_by_segment,
    )
