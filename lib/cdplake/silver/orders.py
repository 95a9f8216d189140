"""Store/POS and web orders (``bronze/orders``) → ``silver/orders``.

Quarantined (an order is a money fact: a wrong one is worse than a late one):
``malformed_json``, ``missing_order_id``, ``unparseable_timestamp``, ``unknown_channel``
(not web/pos), ``unknown_status`` (not completed/refunded), ``invalid_total`` (missing or not a
number), ``invalid_line_items`` (missing, not an array, or an item without a numeric
quantity and unit price).

The customer block is typed by staff or the shopper: an invalid email or phone there is
nulled and the order kept (the raw value stays in bronze).

``item_count`` is the sum of the line quantities (units bought), not the number of lines.
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

KEY = "order_id"
CHANNELS = ("web", "pos")
STATUSES = ("completed", "refunded")
SILVER_COLUMNS = (
    "order_id",
    "store_id",
    "channel",
    "order_ts",
    "currency",
    "status",
    "customer_name",
    "customer_email",
    "customer_phone",
    "total",
    "item_count",
    "line_items",
)
_ENVELOPE = (
    "order_id STRING, store_id STRING, channel STRING, ordered_at STRING, currency STRING, "
    "status STRING, customer STRING, line_items STRING, total STRING, _corrupt_record STRING"
)
_CUSTOMER = "name STRING, email STRING, phone STRING"
_RAW_ITEMS = (
    "ARRAY<STRUCT<sku: STRING, product_id: STRING, name: STRING, category: STRING, "
    "quantity: STRING, unit_price: STRING>>"
)
_JSON_OPTIONS = {"columnNameOfCorruptRecord": "_corrupt_record"}


def _typed_item(item):
    return F.struct(
        text(item["sku"]).alias("sku"),
        text(item["product_id"]).alias("product_id"),
        text(item["name"]).alias("name"),
        text(item["category"]).alias("category"),
        item["quantity"].try_cast("int").alias("quantity"),
        money(item["unit_price"]).alias("unit_price"),
    )


def check_orders(bronze_df: DataFrame, *, default_region: str = "GB") -> DataFrame:
    """Parse and conform raw order lines; add ``_record`` and ``_reasons`` (empty = good).

    Args:
        bronze_df: ``bronze/orders`` rows (``value`` + lineage).
        default_region: region for phone numbers without a country code.
    """
    j = F.from_json("value", _ENVELOPE, _JSON_OPTIONS)
    parsed = bronze_df.select("value", *LINEAGE, j.alias("j"), contract_errors(bronze_df).alias(CONTRACT))
    parsed = parsed.select(
        "*",
        F.from_json("j.customer", _CUSTOMER).alias("_customer"),
        F.transform(F.from_json("j.line_items", _RAW_ITEMS), _typed_item).alias("_items"),
    )
    out = parsed.select(
        text(F.col("j.order_id")).alias("order_id"),
        text(F.col("j.store_id")).alias("store_id"),
        F.lower(text(F.col("j.channel"))).alias("channel"),
        to_utc_timestamp_any(F.col("j.ordered_at")).alias("order_ts"),
        F.upper(text(F.col("j.currency"))).alias("currency"),
        F.lower(text(F.col("j.status"))).alias("status"),
        normalize_name(F.col("_customer.name")).alias("customer_name"),
        valid_email_or_null(normalize_email(F.col("_customer.email"))).alias("customer_email"),
        normalize_phone(F.col("_customer.phone"), default_region).alias("customer_phone"),
        money(F.col("j.total")).alias("total"),
        F.aggregate("_items", F.lit(0), lambda acc, i: acc + F.coalesce(i["quantity"], F.lit(0))).alias(
            "item_count"
        ),
        F.col("_items").alias("line_items"),
        *LINEAGE,
        F.col("value").alias(RECORD),
        CONTRACT,
        (F.col("j").isNull() | F.col("j._corrupt_record").isNotNull()).alias("_malformed"),
    )
    bad_item = F.exists("line_items", lambda i: i["quantity"].isNull() | i["unit_price"].isNull())
    checks = [
        (blank(F.col("order_id")), "missing_order_id"),
        (F.col("order_ts").isNull(), "unparseable_timestamp"),
        (~F.coalesce(F.col("channel").isin(*CHANNELS), F.lit(False)), "unknown_channel"),
        (~F.coalesce(F.col("status").isin(*STATUSES), F.lit(False)), "unknown_status"),
        (F.col("total").isNull(), "invalid_total"),
        (F.col("line_items").isNull() | F.coalesce(bad_item, F.lit(True)), "invalid_line_items"),
    ]
    return out.withColumn(
        REASONS, reasons(F.col("_malformed"), "malformed_json", checks, F.col(CONTRACT))
    ).drop("_malformed", CONTRACT)


def conform_orders(
    bronze_df: DataFrame, *, default_region: str = "GB", quarantined_at: dt.datetime | None = None
) -> tuple[DataFrame, DataFrame]:
    """Split raw order lines into silver orders and quarantined records.

    Args:
        bronze_df: ``bronze/orders`` rows (``value`` + lineage).
        default_region: region for phone numbers without a country code.
        quarantined_at: stamp for quarantined rows; Spark's current timestamp by default.

    Returns:
        ``(silver, quarantine)``; every input row is in exactly one of them.
    """
    return split_checked(
        check_orders(bronze_df, default_region=default_region), SILVER_COLUMNS, quarantined_at
    )
