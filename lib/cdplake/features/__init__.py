"""Per-customer features: golden contact attributes and activity aggregates, relative to an as-of time."""

from cdplake.features.columns import as_utc, at_or_before, days_between, ts_lit, within_days
from cdplake.features.profile import (
    ATTRIBUTES,
    FEATURE_SCHEMA,
    customer_features,
    email_features,
    event_features,
    golden_attributes,
    order_features,
    seen_features,
    with_customer,
)

__all__ = [
    "ATTRIBUTES",
    "FEATURE_SCHEMA",
    "as_utc",
    "at_or_before",
    "customer_features",
    "days_between",
    "email_features",
    "event_features",
    "golden_attributes",
    "order_features",
    "seen_features",
    "ts_lit",
    "with_customer",
    "within_days",
]
