"""Per-customer features: golden attributes (configurable survivorship), built-in groups (RFM, CLV, browsing, email
engagement) and the traits declared in ``conf/features.yaml``, relative to an as-of time."""

from cdplake.features.browsing import order_times, sessionize, sessions, top_categories
from cdplake.features.columns import as_utc, at_or_before, days_between, ts_lit, within_days
from cdplake.features.engagement import email_messages, flag_email_events
from cdplake.features.profile import (
    ATTRIBUTES,
    FEATURE_SCHEMA,
    OBSERVED_SOURCES,
    ObservedSource,
    attribute_observations,
    customer_features,
    email_features,
    event_features,
    feature_columns,
    golden_attributes,
    order_features,
    seen_features,
    trait_sources,
    with_customer,
)
from cdplake.features.rfm import CLV_COLUMNS, clv_columns, quintile_score, rfm_cell, rfm_columns, rfm_features
from cdplake.features.survivorship import source_rank, survive, survivor_key
from cdplake.features.traits import FeatureDefinitionError, aggregate_traits, decay_weight, fill_traits

__all__ = [
    "ATTRIBUTES",
    "CLV_COLUMNS",
    "FEATURE_SCHEMA",
    "FeatureDefinitionError",
    "OBSERVED_SOURCES",
    "ObservedSource",
    "aggregate_traits",
    "attribute_observations",
    "as_utc",
    "at_or_before",
    "clv_columns",
    "customer_features",
    "days_between",
    "decay_weight",
    "email_features",
    "email_messages",
    "event_features",
    "feature_columns",
    "fill_traits",
    "flag_email_events",
    "golden_attributes",
    "order_features",
    "order_times",
    "quintile_score",
    "rfm_cell",
    "rfm_columns",
    "rfm_features",
    "seen_features",
    "sessionize",
    "sessions",
    "source_rank",
    "survive",
    "survivor_key",
    "top_categories",
    "trait_sources",
    "ts_lit",
    "with_customer",
    "within_days",
]
