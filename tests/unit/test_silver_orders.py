"""conform_orders: raw order lines in, silver and quarantine frames compared whole."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pyspark.testing import assertDataFrameEqual

from cdplake.silver import conform_orders

UTC = dt.timezone.utc
FILE = "file:/lake/landing/orders/2026-10-05/pos.jsonl"
INGESTED = dt.datetime(2026, 10, 6, 1, 0, tzinfo=UTC)
QUARANTINED = dt.datetime(2026, 10, 6, 2, 0, tzinfo=UTC)
BATCH = "run-1:0"
BRONZE = "value STRING, _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
ITEM = "STRUCT<sku: STRING, product_id: STRING, name: STRING, category: STRING, quantity: INT, unit_price: DECIMAL(18,2)>"
SILVER = (
    "order_id STRING, store_id STRING, channel STRING, order_ts TIMESTAMP, currency STRING, status STRING, "
    "customer_name STRING, customer_email STRING, customer_phone STRING, total DECIMAL(18,2), "
    f"item_count INT, line_items ARRAY<{ITEM}>, _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
)
QUARANTINE = (
    "record STRING, reasons ARRAY<STRING>, _source_file STRING, _batch_id STRING, _quarantined_at TIMESTAMP"
)

LINES = [
    '{"order_id":"o1","store_id":"s1","channel":"POS","ordered_at":"2026-10-05T18:30:00+01:00","currency":"gbp",'
    '"status":"completed","customer":{"name":" ann  SMITH ","email":"Ann@Example.com","phone":"07700 900123"},'
    '"line_items":[{"sku":"k1","product_id":"p1","name":"Sock","category":"Apparel","quantity":2,"unit_price":4.5},'
    '{"sku":"k2","product_id":"p2","name":"Shoe","category":"Shoes","quantity":1,"unit_price":60}],"total":69.0}',
    # a mistyped customer email is nulled, the order kept
    '{"order_id":"o2","channel":"web","ordered_at":"2026-10-05T10:00:00Z","currency":"GBP","status":"refunded",'
    '"customer":{"email":"typo@"},"line_items":[],"total":"0"}',
    '{"order_id":"o3","channel":"phone","ordered_at":"2026-10-05T10:00:00Z","status":"completed",'
    '"line_items":[{"sku":"k1","quantity":"two","unit_price":1}],"total":"abc"}',
    '{"channel":"web","ordered_at":"nope","status":"done","total":5,"line_items":[]}',
    '{"order_id":"o6","channel":"web","ordered_at":"2026-10-05T10:00:00Z","status":"completed","total":5}',
    '{"order_id": "o5", ',
]


def test_conform_orders_splits_silver_and_quarantine(spark):
    bronze = spark.createDataFrame([(line, FILE, INGESTED, BATCH) for line in LINES], BRONZE)

    silver, quarantine = conform_orders(bronze, default_region="GB", quarantined_at=QUARANTINED)

    lineage = (FILE, INGESTED, BATCH)
    expected_silver = spark.createDataFrame(
        [
            # 18:30 at +01:00 = 17:30 UTC; item_count = 2 + 1 units
            ("o1", "s1", "pos", dt.datetime(2026, 10, 5, 17, 30, tzinfo=UTC), "GBP", "completed",
             "Ann Smith", "ann@example.com", "+447700900123", Decimal("69.00"), 3,
             [("k1", "p1", "Sock", "Apparel", 2, Decimal("4.50")), ("k2", "p2", "Shoe", "Shoes", 1, Decimal("60.00"))],
             *lineage),
            ("o2", None, "web", dt.datetime(2026, 10, 5, 10, 0, tzinfo=UTC), "GBP", "refunded",
             None, None, None, Decimal("0.00"), 0, [], *lineage),
        ],
        SILVER,
    )  # fmt: skip
    expected_quarantine = spark.createDataFrame(
        [
            (LINES[2], ["unknown_channel", "invalid_total", "invalid_line_items"], FILE, BATCH, QUARANTINED),
            (
                LINES[3],
                ["missing_order_id", "unparseable_timestamp", "unknown_status"],
                FILE,
                BATCH,
                QUARANTINED,
            ),
            (LINES[4], ["invalid_line_items"], FILE, BATCH, QUARANTINED),
            (LINES[5], ["malformed_json"], FILE, BATCH, QUARANTINED),
        ],
        QUARANTINE,
    )
    assertDataFrameEqual(silver, expected_silver)
    assertDataFrameEqual(quarantine, expected_quarantine)
