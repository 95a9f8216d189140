"""conform_events: raw Segment lines in, silver and quarantine frames compared whole."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from pyspark.testing import assertDataFrameEqual

from cdplake.silver import conform_events

UTC = dt.timezone.utc
FILE = "file:/lake/landing/events/2026-10-05/part-0.jsonl"
INGESTED = dt.datetime(2026, 10, 6, 1, 0, tzinfo=UTC)
QUARANTINED = dt.datetime(2026, 10, 6, 2, 0, tzinfo=UTC)
BATCH = "run-1:0"
BRONZE = "value STRING, _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
SILVER = (
    "message_id STRING, type STRING, event STRING, user_id STRING, anonymous_id STRING, "
    "previous_id STRING, email STRING, phone STRING, first_name STRING, last_name STRING, "
    "event_ts TIMESTAMP, page_url STRING, product_id STRING, product_category STRING, "
    "price DECIMAL(18,2), quantity INT, order_id STRING, revenue DECIMAL(18,2), currency STRING, "
    "properties STRING, traits STRING, _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
)
QUARANTINE = (
    "record STRING, reasons ARRAY<STRING>, _source_file STRING, _batch_id STRING, _quarantined_at TIMESTAMP"
)

PROPS_1 = '{"product_id":"p1","category":"Shoes","price":59.999,"quantity":2,"url":"https://shop.example/p1"}'
TRAITS_2 = '{"email":" Jane.Doe@Example.com ","firstName":"  jane ","lastName":"DOE","phone":"07700 900456"}'
LINES = [
    '{"messageId":"m1","type":"track","event":"Product Viewed","userId":"u1","anonymousId":"a1",'
    f'"properties":{PROPS_1},"context":{{"traits":{{"email":"U1@Example.com","phone":"+44 7700 900123"}}}},'
    '"timestamp":"2026-10-05T14:03:11+02:00"}',
    f'{{"messageId":"m2","type":"identify","userId":"u2","traits":{TRAITS_2},"timestamp":"2026-10-05T09:00:00Z"}}',
    # an invalid trait email is nulled, the event kept (raw value stays in `traits`)
    '{"messageId":"m3","type":"identify","anonymousId":"a3","traits":{"email":"not-an-email"},"timestamp":1791200000}',
    '{"messageId":"m4","type":"track"',
    '{"type":"page","anonymousId":"a5","timestamp":"yesterday"}',
    '{"messageId":"m6","type":"screen","userId":"u6","timestamp":"2026-10-05T10:00:00Z"}',
    '{"messageId":"m7","type":"track","anonymousId":"a7","timestamp":"2026-10-05T10:00:00Z"}',
    '{"messageId":"m8","type":"alias","userId":"u8","timestamp":"2026-10-05T10:00:00Z"}',
    "",
]


def test_conform_events_splits_silver_and_quarantine(spark):
    bronze = spark.createDataFrame([(line, FILE, INGESTED, BATCH) for line in LINES], BRONZE)

    silver, quarantine = conform_events(bronze, default_region="GB", quarantined_at=QUARANTINED)

    lineage = (FILE, INGESTED, BATCH)
    expected_silver = spark.createDataFrame(
        [
            (
                "m1", "track", "Product Viewed", "u1", "a1", None, "u1@example.com", "+447700900123", None, None,
                # 14:03:11 at +02:00 = 12:03:11 UTC
                dt.datetime(2026, 10, 5, 12, 3, 11, tzinfo=UTC),
                # price 59.999 rounds half-up to 60.00
                "https://shop.example/p1", "p1", "Shoes", Decimal("60.00"), 2, None, None, None, PROPS_1, None,
                *lineage,
            ),
            (
                "m2", "identify", None, "u2", None, None, "jane.doe@example.com", "+447700900456", "Jane", "Doe",
                dt.datetime(2026, 10, 5, 9, 0, 0, tzinfo=UTC),
                None, None, None, None, None, None, None, None, None, TRAITS_2,
                *lineage,
            ),
            (
                "m3", "identify", None, None, "a3", None, None, None, None, None,
                # epoch 1791200000 = 2026-10-05 11:33:20 UTC (see test_silver_columns)
                dt.datetime(2026, 10, 5, 11, 33, 20, tzinfo=UTC),
                None, None, None, None, None, None, None, None, None, '{"email":"not-an-email"}',
                *lineage,
            ),
        ],
        SILVER,
    )  # fmt: skip
    expected_quarantine = spark.createDataFrame(
        [
            (LINES[3], ["malformed_json"], FILE, BATCH, QUARANTINED),
            (LINES[4], ["missing_message_id", "unparseable_timestamp"], FILE, BATCH, QUARANTINED),
            (LINES[5], ["unknown_type"], FILE, BATCH, QUARANTINED),
            (LINES[6], ["missing_event_name"], FILE, BATCH, QUARANTINED),
            (LINES[7], ["missing_previous_id"], FILE, BATCH, QUARANTINED),
            ("", ["malformed_json"], FILE, BATCH, QUARANTINED),
        ],
        QUARANTINE,
    )
    assertDataFrameEqual(silver, expected_silver)
    assertDataFrameEqual(quarantine, expected_quarantine)


def test_context_members_that_are_not_objects_read_as_null_and_the_event_is_kept(spark):
    lines = [
        # the page url comes from context.page when properties has none
        '{"messageId":"m10","type":"page","anonymousId":"a10","timestamp":"2026-10-05T10:00:00Z",'
        '"context":{"page":{"url":"https://shop.example/"},"traits":"not an object"}}',
        # context.page an array, a trait an object: those fields are null, the others read
        '{"messageId":"m11","type":"track","event":"Viewed","anonymousId":"a11","timestamp":"2026-10-05T10:00:00Z",'
        '"context":{"page":["x"],"traits":{"firstName":" ann ","email":{"nested":1}}}}',
        # the whole context a string: top-level traits still count
        '{"messageId":"m12","type":"identify","userId":"u12","timestamp":"2026-10-05T10:00:00Z",'
        '"traits":{"phone":"07700 900789"},"context":"ctx"}',
    ]
    bronze = spark.createDataFrame([(line, FILE, INGESTED, BATCH) for line in lines], BRONZE)

    silver, quarantine = conform_events(bronze, default_region="GB", quarantined_at=QUARANTINED)

    at = dt.datetime(2026, 10, 5, 10, 0, 0, tzinfo=UTC)
    lineage = (FILE, INGESTED, BATCH)
    assertDataFrameEqual(
        silver,
        spark.createDataFrame(
            [
                ("m10", "page", None, None, "a10", None, None, None, None, None, at,
                 "https://shop.example/", None, None, None, None, None, None, None, None, None, *lineage),
                ("m11", "track", "Viewed", None, "a11", None, None, None, "Ann", None, at,
                 None, None, None, None, None, None, None, None, None, None, *lineage),
                ("m12", "identify", None, "u12", None, None, None, "+447700900789", None, None, at,
                 None, None, None, None, None, None, None, None, None, '{"phone":"07700 900789"}', *lineage),
            ],
            SILVER,
        ),
    )  # fmt: skip
    assert quarantine.count() == 0
