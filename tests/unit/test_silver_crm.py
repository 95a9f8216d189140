"""conform_crm and dedupe: CRM rows in, silver and quarantine frames compared whole."""

from __future__ import annotations

import datetime as dt

from pyspark.testing import assertDataFrameEqual

from cdplake.bronze import CRM_COLUMNS
from cdplake.silver import conform_crm, dedupe

UTC = dt.timezone.utc
FILE = "file:/lake/landing/crm/2026-10-05/contacts.csv"
INGESTED = dt.datetime(2026, 10, 6, 1, 0, tzinfo=UTC)
QUARANTINED = dt.datetime(2026, 10, 6, 2, 0, tzinfo=UTC)
BATCH = "run-1:0"
BRONZE = ", ".join(f"{c} STRING" for c in CRM_COLUMNS) + (
    ", _corrupt_record STRING, _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
)
SILVER = (
    "contact_id STRING, first_name STRING, last_name STRING, email STRING, phone STRING, "
    "address_line1 STRING, city STRING, postcode STRING, country STRING, date_of_birth DATE, "
    "loyalty_tier STRING, email_opt_in BOOLEAN, email_opt_in_at TIMESTAMP, updated_at TIMESTAMP, "
    "_source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
)
QUARANTINE = (
    "record STRING, reasons ARRAY<STRING>, _source_file STRING, _batch_id STRING, _quarantined_at TIMESTAMP"
)
LINEAGE = (FILE, INGESTED, BATCH)


def crm_row(contact_id, updated_at, corrupt=None, **fields):
    values = {c: fields.get(c) for c in CRM_COLUMNS}
    values.update(contact_id=contact_id, updated_at=updated_at)
    return (*values.values(), corrupt, *LINEAGE)


def test_conform_crm_splits_silver_and_quarantine(spark):
    bronze = spark.createDataFrame(
        [
            crm_row(
                "c1", "2026-10-01T12:00:00Z", first_name=" ann ", last_name="SMITH", email=" Ann@Example.com",
                phone="07700 900123", address_line1=" 1  High   St ", city="london", postcode="sw1a1aa",
                country="gb", date_of_birth="1985-03-07", loyalty_tier="Gold", email_opt_in="Yes",
                email_opt_in_at="2026-01-02T03:04:05+01:00",
            ),
            # bad optional fields are nulled, the contact kept
            crm_row(
                "c2", "1791200000", email="bob(at)example.com", phone="12", date_of_birth="31/02/1990",
                email_opt_in="maybe",
            ),
            crm_row("  ", "2026-10-01"),
            crm_row("c4", "last week"),
            crm_row("c5", None, corrupt='c5,"broken'),
        ],
        BRONZE,
    )  # fmt: skip

    silver, quarantine = conform_crm(bronze, default_region="GB", quarantined_at=QUARANTINED)

    expected_silver = spark.createDataFrame(
        [
            # 03:04:05 at +01:00 = 02:04:05 UTC
            # the street type spelled out (cdplake.silver.columns.normalize_address)
            ("c1", "Ann", "Smith", "ann@example.com", "+447700900123", "1 High Street", "London", "SW1A 1AA", "GB",
             dt.date(1985, 3, 7), "gold", True, dt.datetime(2026, 1, 2, 2, 4, 5, tzinfo=UTC),
             dt.datetime(2026, 10, 1, 12, 0, tzinfo=UTC), *LINEAGE),
            # epoch 1791200000 = 2026-10-05 11:33:20 UTC
            ("c2", None, None, None, None, None, None, None, None, None, None, None, None,
             dt.datetime(2026, 10, 5, 11, 33, 20, tzinfo=UTC), *LINEAGE),
        ],
        SILVER,
    )  # fmt: skip
    expected_quarantine = spark.createDataFrame(
        [
            # the record of a parsed row is its columns as JSON (nulls left out)
            (
                '{"contact_id":"  ","updated_at":"2026-10-01"}',
                ["missing_contact_id"],
                FILE,
                BATCH,
                QUARANTINED,
            ),
            (
                '{"contact_id":"c4","updated_at":"last week"}',
                ["unparseable_timestamp"],
                FILE,
                BATCH,
                QUARANTINED,
            ),
            ('c5,"broken', ["malformed_csv"], FILE, BATCH, QUARANTINED),
        ],
        QUARANTINE,
    )
    assertDataFrameEqual(silver, expected_silver)
    assertDataFrameEqual(quarantine, expected_quarantine)


def test_dedupe_keeps_newest_contact_and_first_ingested_event(spark):
    t = dt.datetime
    contacts = spark.createDataFrame(
        [
            ("c1", "old", t(2026, 10, 1, tzinfo=UTC), "f1", t(2026, 10, 6, tzinfo=UTC), "b:0"),
            ("c1", "new", t(2026, 10, 3, tzinfo=UTC), "f1", t(2026, 10, 6, tzinfo=UTC), "b:0"),
            ("c2", "only", t(2026, 10, 2, tzinfo=UTC), "f1", t(2026, 10, 6, tzinfo=UTC), "b:0"),
        ],
        "contact_id STRING, v STRING, updated_at TIMESTAMP, _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING",
    )
    assertDataFrameEqual(
        dedupe(contacts, "contact_id", "updated_at"),
        contacts.where("v != 'old'"),
    )
    events = spark.createDataFrame(
        [
            ("m1", "second", "f2", t(2026, 10, 6, 2, tzinfo=UTC), "b:1"),
            ("m1", "first", "f1", t(2026, 10, 6, 1, tzinfo=UTC), "b:0"),
        ],
        "message_id STRING, v STRING, _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING",
    )
    assertDataFrameEqual(dedupe(events, "message_id"), events.where("v = 'first'"))
