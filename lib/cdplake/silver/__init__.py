"""Bronze → silver: Column functions, per-source conform transforms, dedupe, MERGE, quarantine, SCD2 history."""

from cdplake.silver.build import (
    SILVER_TABLES,
    SilverResult,
    SilverTable,
    build_silver,
    build_silver_table,
    dedupe,
)
from cdplake.silver.columns import (
    is_valid_email,
    normalize_address,
    normalize_country,
    normalize_email,
    normalize_name,
    normalize_phone,
    normalize_postcode,
    to_utc_timestamp_any,
)
from cdplake.silver.crm import conform_crm
from cdplake.silver.email import conform_email
from cdplake.silver.events import conform_events
from cdplake.silver.history import HistoryMetrics, merge_history
from cdplake.silver.orders import conform_orders

__all__ = [
    "SILVER_TABLES",
    "HistoryMetrics",
    "SilverResult",
    "SilverTable",
    "build_silver",
    "build_silver_table",
    "conform_crm",
    "conform_email",
    "conform_events",
    "conform_orders",
    "dedupe",
    "is_valid_email",
    "merge_history",
    "normalize_address",
    "normalize_country",
    "normalize_email",
    "normalize_name",
    "normalize_phone",
    "normalize_postcode",
    "to_utc_timestamp_any",
]
