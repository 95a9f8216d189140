"""conform_email: raw SendGrid lines in, silver and quarantine frames compared whole."""

from __future__ import annotations

import datetime as dt

from pyspark.testing import assertDataFrameEqual

from cdplake.silver import conform_email

UTC = dt.timezone.utc
FILE = "file:/lake/landing/email/2026-10-05/part-0.jsonl"
INGESTED = dt.datetime(2026, 10, 6, 1, 0, tzinfo=UTC)
QUARANTINED = dt.datetime(2026, 10, 6, 2, 0, tzinfo=UTC)
BATCH = "run-1:3"
BRONZE = "value STRING, _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
SILVER = (
    "event_id STRING, message_id STRING, event STRING, email STRING, event_ts TIMESTAMP, url STRING, "
    "bounce_type STRING, reason STRING, campaign STRING, user_agent STRING, "
    "_source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
)
QUARANTINE = (
    "record STRING, reasons ARRAY<STRING>, _source_file STRING, _batch_id STRING, _quarantined_at TIMESTAMP"
)

LINES = [
    '{"email":"Ann@Example.com","timestamp":1791200000,"event":"open","sg_event_id":"e1",'
    '"sg_message_id":"sm1","category":["autumn_sale","newsletter"],"useragent":"Mozilla/5.0"}',
    '{"email":"bob@example.com","timestamp":"1791200060","event":"bounce","sg_event_id":"e2",'
    '"sg_message_id":"sm2","category":"welcome","type":"Bounce","reason":"550 5.1.1 unknown user"}',
    '{"email":"bob@example.com","timestamp":1791200120,"event":"click","sg_event_id":"e3","url":"https://shop.example/x"}',
    '{"email":"nope","timestamp":1791200000,"event":"open","sg_event_id":"e4"}',
    '{"email":"c@example.com","timestamp":"soon","event":"opened","sg_message_id":"sm5"}',
    "garbage",
]


def test_conform_email_splits_silver_and_quarantine(spark):
    bronze = spark.createDataFrame([(line, FILE, INGESTED, BATCH) for line in LINES], BRONZE)

    silver, quarantine = conform_email(bronze, quarantined_at=QUARANTINED)

    lineage = (FILE, INGESTED, BATCH)
    # epoch 1791200000 = 2026-10-05 11:33:20 UTC; +60 s and +120 s follow
    expected_silver = spark.createDataFrame(
        [
            ("e1", "sm1", "open", "ann@example.com", dt.datetime(2026, 10, 5, 11, 33, 20, tzinfo=UTC),
             None, None, None, "autumn_sale", "Mozilla/5.0", *lineage),
            ("e2", "sm2", "bounce", "bob@example.com", dt.datetime(2026, 10, 5, 11, 34, 20, tzinfo=UTC),
             None, "bounce", "550 5.1.1 unknown user", "welcome", None, *lineage),
            ("e3", None, "click", "bob@example.com", dt.datetime(2026, 10, 5, 11, 35, 20, tzinfo=UTC),
             "https://shop.example/x", None, None, None, None, *lineage),
        ],
        SILVER,
    )  # fmt: skip
    expected_quarantine = spark.createDataFrame(
        [
            (LINES[3], ["invalid_email"], FILE, BATCH, QUARANTINED),
            (
                LINES[4],
                ["missing_event_id", "unknown_event", "unparseable_timestamp"],
                FILE,
                BATCH,
                QUARANTINED,
            ),
            ("garbage", ["malformed_json"], FILE, BATCH, QUARANTINED),
        ],
        QUARANTINE,
    )
    assertDataFrameEqual(silver, expected_silver)
    assertDataFrameEqual(quarantine, expected_quarantine)
