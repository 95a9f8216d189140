"""Segment events (``bronze/events``) → ``silver/events``.

Quarantined (the row's key, type or time is unusable): ``malformed_json`` (not a JSON object),
``missing_message_id``, ``unknown_type`` (not track/identify/page/alias), ``missing_event_name``
(a track without ``event``), ``missing_user_id`` (neither ``userId`` nor ``anonymousId``),
``missing_previous_id`` (an alias without ``previousId``), ``unparseable_timestamp``.

Optional attributes that fail validation (an invalid trait email, a phone that cannot be a
phone number, a non-numeric price) are nulled and the event is kept: the behaviour is still
real. The raw values are not lost: ``traits`` and ``properties`` keep the original JSON, and
bronze keeps the whole line.
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
    money,
    reasons,
    split_checked,
    text,
    valid_email_or_null,
)
from cdplake.silver.columns import normalize_email, normalize_name, normalize_phone, to_utc_timestamp_any

KEY = "message_id"
EVENT_TYPES = ("track", "identify", "page", "alias")
SILVER_COLUMNS = (
    "message_id",
    "type",
    "event",
    "user_id",
    "anonymous_id",
    "previous_id",
    "email",
    "phone",
    "first_name",
    "last_name",
    "event_ts",
    "page_url",
    "product_id",
    "product_category",
    "price",
    "quantity",
    "order_id",
    "revenue",
    "currency",
    "properties",
    "traits",
)

# Every field a STRING: nested objects keep their JSON text and numbers their digits, so
# a record is malformed only when it is not a JSON object; field types are checked below.
_ENVELOPE = (
    "messageId STRING, type STRING, event STRING, userId STRING, anonymousId STRING, "
    "previousId STRING, traits STRING, properties STRING, context STRING, timestamp STRING, "
    "_corrupt_record STRING"
)
_TRAITS = "email STRING, firstName STRING, lastName STRING, phone STRING"
_PROPERTIES = (
    "url STRING, product_id STRING, category STRING, price STRING, quantity STRING, "
    "order_id STRING, revenue STRING, currency STRING"
)
# context.page and context.traits in one parse of the context text: a member that is not an
# object (a string, an array) reads as null, as its own parse would.
_CONTEXT = f"page STRUCT<url: STRING>, traits STRUCT<{_TRAITS.replace(' STRING', ': STRING')}>"
_JSON_OPTIONS = {"columnNameOfCorruptRecord": "_corrupt_record"}


def check_events(bronze_df: DataFrame, *, default_region: str = "GB") -> DataFrame:
    """Parse and conform raw Segment lines; add ``_record`` and ``_reasons`` (empty = good).

    Args:
        bronze_df: ``bronze/events`` rows (``value`` + lineage).
        default_region: region for phone numbers without a country code.
    """
    j = F.from_json("value", _ENVELOPE, _JSON_OPTIONS)
    parsed = bronze_df.select("value", *LINEAGE, j.alias("j"), contract_errors(bronze_df).alias(CONTRACT))
    traits = F.from_json("j.traits", _TRAITS)
    context = F.from_json("j.context", _CONTEXT)
    props = F.from_json("j.properties", _PROPERTIES)
    # Each JSON text parsed once: the aliases below are each read by several columns, so the
    # optimizer keeps them in this projection instead of repeating a parse per field.
    parsed = parsed.select("*", traits.alias("_traits"), context.alias("_context"), props.alias("_props"))

    def trait(name: str):
        # identify carries traits at the top; track/page repeat them in context.traits
        return F.coalesce(F.col(f"_traits.{name}"), F.col(f"_context.traits.{name}"))

    email = normalize_email(trait("email"))
    event_type = F.lower(text(F.col("j.type")))
    out = parsed.select(
        text(F.col("j.messageId")).alias("message_id"),
        event_type.alias("type"),
        text(F.col("j.event")).alias("event"),
        text(F.col("j.userId")).alias("user_id"),
        text(F.col("j.anonymousId")).alias("anonymous_id"),
        text(F.col("j.previousId")).alias("previous_id"),
        valid_email_or_null(email).alias("email"),
        normalize_phone(trait("phone"), default_region).alias("phone"),
        normalize_name(trait("firstName")).alias("first_name"),
        normalize_name(trait("lastName")).alias("last_name"),
        to_utc_timestamp_any(F.col("j.timestamp")).alias("event_ts"),
        text(F.coalesce(F.col("_props.url"), F.col("_context.page.url"))).alias("page_url"),
        text(F.col("_props.product_id")).alias("product_id"),
        text(F.col("_props.category")).alias("product_category"),
        money(F.col("_props.price")).alias("price"),
        F.col("_props.quantity").try_cast("int").alias("quantity"),
        text(F.col("_props.order_id")).alias("order_id"),
        money(F.col("_props.revenue")).alias("revenue"),
        F.upper(text(F.col("_props.currency"))).alias("currency"),
        F.col("j.properties").alias("properties"),
        F.col("j.traits").alias("traits"),
        *LINEAGE,
        F.col("value").alias(RECORD),
        CONTRACT,
        F.col("j").isNull().alias("_malformed"),
        F.col("j._corrupt_record").isNotNull().alias("_corrupt"),
    )
    checks = [
        (blank(F.col("message_id")), "missing_message_id"),
        (~F.coalesce(F.col("type").isin(*EVENT_TYPES), F.lit(False)), "unknown_type"),
        ((F.col("type") == "track") & blank(F.col("event")), "missing_event_name"),
        (blank(F.col("user_id")) & blank(F.col("anonymous_id")), "missing_user_id"),
        ((F.col("type") == "alias") & blank(F.col("previous_id")), "missing_previous_id"),
        (F.col("event_ts").isNull(), "unparseable_timestamp"),
    ]
    malformed = F.col("_malformed") | F.col("_corrupt")
    return out.withColumn(REASONS, reasons(malformed, "malformed_json", checks, F.col(CONTRACT))).drop(
        "_malformed", "_corrupt", CONTRACT
    )


def conform_events(
    bronze_df: DataFrame, *, default_region: str = "GB", quarantined_at: dt.datetime | None = None
) -> tuple[DataFrame, DataFrame]:
    """Split raw Segment lines into silver events and quarantined records.

    Args:
        bronze_df: ``bronze/events`` rows (``value`` + lineage).
        default_region: region for phone numbers without a country code.
        quarantined_at: stamp for quarantined rows; Spark's current timestamp by default.

    Returns:
        ``(silver, quarantine)``; every input row is in exactly one of them.
    """
    return split_checked(
        check_events(bronze_df, default_region=default_region), SILVER_COLUMNS, quarantined_at
    )
