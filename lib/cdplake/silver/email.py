"""SendGrid webhook events (``bronze/email``) → ``silver/email_events``.

Quarantined: ``malformed_json``, ``missing_event_id`` (no ``sg_event_id``), ``unknown_event``,
``unparseable_timestamp``, ``invalid_email`` (an email event is about its recipient: without
a valid address it cannot be attributed to anybody).
"""

from __future__ import annotations

import datetime as dt

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdplake.silver._common import (
    CONTRACT,
    LINEAGE,
    REASONS,
    RECORD,
    blank,
    contract_errors,
    reasons,
    split_checked,
    text,
)
from cdplake.silver.columns import is_valid_email, normalize_email, to_utc_timestamp_any

KEY = "event_id"
EMAIL_EVENTS = (
    "processed",
    "delivered",
    "open",
    "click",
    "bounce",
    "dropped",
    "deferred",
    "unsubscribe",
    "group_unsubscribe",
    "spamreport",
)
SILVER_COLUMNS = (
    "event_id",
    "message_id",
    "event",
    "email",
    "event_ts",
    "url",
    "bounce_type",
    "reason",
    "campaign",
    "user_agent",
)
_ENVELOPE = (
    "email STRING, timestamp STRING, event STRING, sg_event_id STRING, sg_message_id STRING, "
    "category STRING, url STRING, type STRING, reason STRING, useragent STRING, "
    "_corrupt_record STRING"
)
_JSON_OPTIONS = {"columnNameOfCorruptRecord": "_corrupt_record"}


def _campaign(category):
    # SendGrid sends `category` as a string or an array of strings: the first one is the campaign.
    as_array = F.from_json(category, "ARRAY<STRING>")
    return text(
        F.when(F.ltrim(category).startswith("["), F.try_element_at(as_array, F.lit(1))).otherwise(category)
    )


def check_email(bronze_df: DataFrame) -> DataFrame:
    """Parse and conform raw SendGrid lines; add ``_record`` and ``_reasons`` (empty = good).

    Args:
        bronze_df: ``bronze/email`` rows (``value`` + lineage).
    """
    j = F.from_json("value", _ENVELOPE, _JSON_OPTIONS)
    parsed = bronze_df.select("value", *LINEAGE, j.alias("j"), contract_errors(bronze_df).alias(CONTRACT))
    email = normalize_email(F.col("j.email"))
    out = parsed.select(
        text(F.col("j.sg_event_id")).alias("event_id"),
        text(F.col("j.sg_message_id")).alias("message_id"),
        F.lower(text(F.col("j.event"))).alias("event"),
        email.alias("email"),
        to_utc_timestamp_any(F.col("j.timestamp")).alias("event_ts"),
        text(F.col("j.url")).alias("url"),
        F.lower(text(F.col("j.type"))).alias("bounce_type"),
        text(F.col("j.reason")).alias("reason"),
        _campaign(F.col("j.category")).alias("campaign"),
        text(F.col("j.useragent")).alias("user_agent"),
        *LINEAGE,
        F.col("value").alias(RECORD),
        CONTRACT,
        (F.col("j").isNull() | F.col("j._corrupt_record").isNotNull()).alias("_malformed"),
    )
    checks = [
        (blank(F.col("event_id")), "missing_event_id"),
        (~F.coalesce(F.col("event").isin(*EMAIL_EVENTS), F.lit(False)), "unknown_event"),
        (F.col("event_ts").isNull(), "unparseable_timestamp"),
        (~is_valid_email(F.col("email")), "invalid_email"),
    ]
    return out.withColumn(
        REASONS, reasons(F.col("_malformed"), "malformed_json", checks, F.col(CONTRACT))
    ).drop("_malformed", CONTRACT)


def conform_email(
    bronze_df: DataFrame, *, quarantined_at: dt.datetime | None = None
) -> tuple[DataFrame, DataFrame]:
    """Split raw SendGrid lines into silver email events and quarantined records.

    Args:
        bronze_df: ``bronze/email`` rows (``value`` + lineage).
        quarantined_at: stamp for quarantined rows; Spark's current timestamp by default.

    Returns:
        ``(silver, quarantine)``; every input row is in exactly one of them.
    """
    return split_checked(check_email(bronze_df), SILVER_COLUMNS, quarantined_at)
