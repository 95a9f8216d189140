"""CRM contact export (``bronze/crm``) → ``silver/crm_contacts`` (current state per contact).

Quarantined (the key or the version time is unusable): ``malformed_csv`` (Spark could not
split the row into the contract's columns), ``missing_contact_id``, ``unparseable_timestamp``
(``updated_at``, which decides which version of a contact wins).

Optional attributes that fail validation (email syntax, phone, date of birth, opt-in flag)
are nulled and the contact kept; the raw values stay in bronze.
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdplake.bronze.sources import CORRUPT_RECORD, CRM_COLUMNS
from cdplake.silver._common import (
    LINEAGE,
    REASONS,
    RECORD,
    blank,
    reasons,
    split_checked,
    text,
    valid_email_or_null,
)
from cdplake.silver.columns import (
    normalize_address,
    normalize_country,
    normalize_email,
    normalize_name,
    normalize_phone,
    normalize_postcode,
    to_utc_timestamp_any,
)

KEY = "contact_id"
ORDER_BY = "updated_at"
SILVER_COLUMNS = CRM_COLUMNS
_TRUE = ("true", "t", "yes", "y", "1")
_FALSE = ("false", "f", "no", "n", "0")


def _flag(col):
    v = F.lower(text(col))
    return F.when(v.isin(*_TRUE), F.lit(True)).when(v.isin(*_FALSE), F.lit(False))


def check_crm(bronze_df: DataFrame, *, default_region: str = "GB") -> DataFrame:
    """Conform CRM rows (all STRING); add ``_record`` and ``_reasons`` (empty = good).

    Args:
        bronze_df: ``bronze/crm`` rows (the CSV columns, ``_corrupt_record`` + lineage).
        default_region: region for phone numbers without a country code.
    """
    c = F.col
    record = F.coalesce(c(CORRUPT_RECORD), F.to_json(F.struct(*[c(n) for n in CRM_COLUMNS])))
    out = bronze_df.select(
        text(c("contact_id")).alias("contact_id"),
        normalize_name(c("first_name")).alias("first_name"),
        normalize_name(c("last_name")).alias("last_name"),
        valid_email_or_null(normalize_email(c("email"))).alias("email"),
        normalize_phone(c("phone"), default_region).alias("phone"),
        normalize_address(c("address_line1")).alias("address_line1"),
        normalize_name(c("city")).alias("city"),
        normalize_postcode(c("postcode")).alias("postcode"),
        normalize_country(c("country")).alias("country"),
        text(c("date_of_birth")).try_cast("date").alias("date_of_birth"),
        F.lower(text(c("loyalty_tier"))).alias("loyalty_tier"),
        _flag(c("email_opt_in")).alias("email_opt_in"),
        to_utc_timestamp_any(c("email_opt_in_at")).alias("email_opt_in_at"),
        to_utc_timestamp_any(c("updated_at")).alias("updated_at"),
        *LINEAGE,
        record.alias(RECORD),
        c(CORRUPT_RECORD).isNotNull().alias("_malformed"),
    )
    checks = [
        (blank(c("contact_id")), "missing_contact_id"),
        (c("updated_at").isNull(), "unparseable_timestamp"),
    ]
    return out.withColumn(REASONS, reasons(c("_malformed"), "malformed_csv", checks)).drop("_malformed")


def conform_crm(
    bronze_df: DataFrame, *, default_region: str = "GB", quarantined_at: dt.datetime | None = None
) -> tuple[DataFrame, DataFrame]:
    """Split CRM rows into silver contacts and quarantined records (no dedupe here).

    Args:
        bronze_df: ``bronze/crm`` rows.
        default_region: region for phone numbers without a country code.
        quarantined_at: stamp for quarantined rows; Spark's current timestamp by default.

    Returns:
        ``(silver, quarantine)``; every input row is in exactly one of them.
    """
    return split_checked(check_crm(bronze_df, default_region=default_region), SILVER_COLUMNS, quarantined_at)
