"""Landing → bronze → silver on a temp lake: conform, dedupe, MERGE, quarantine, reruns."""

from __future__ import annotations

import dataclasses
import datetime as dt
from pathlib import Path

import pytest
from pyspark.errors import StreamingQueryException
from pyspark.testing import assertDataFrameEqual

from cdplake.bronze import CRM_COLUMNS, ingest_all
from cdplake.io.delta import STATS_COLUMNS, read_table, table_exists, table_version
from cdplake.silver import SILVER_TABLES, SilverResult, build_silver, build_silver_table
from cdplake.silver.events import check_events

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T1 = dt.datetime(2026, 10, 6, 1, 0, tzinfo=UTC)
T2 = dt.datetime(2026, 10, 7, 1, 0, tzinfo=UTC)
QUARANTINE = (
    "record STRING, reasons ARRAY<STRING>, _source_file STRING, _batch_id STRING, _quarantined_at TIMESTAMP"
)
LINEAGE = ", _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
EVENTS = (
    "message_id STRING, type STRING, event STRING, user_id STRING, anonymous_id STRING, "
    "previous_id STRING, email STRING, phone STRING, first_name STRING, last_name STRING, "
    "event_ts TIMESTAMP, page_url STRING, product_id STRING, product_category STRING, "
    "price DECIMAL(18,2), quantity INT, order_id STRING, revenue DECIMAL(18,2), currency STRING, "
    "properties STRING, traits STRING" + LINEAGE
)
EMAIL = (
    "event_id STRING, message_id STRING, event STRING, email STRING, event_ts TIMESTAMP, url STRING, "
    "bounce_type STRING, reason STRING, campaign STRING, user_agent STRING" + LINEAGE
)
CRM = (
    "contact_id STRING, first_name STRING, last_name STRING, email STRING, phone STRING, "
    "address_line1 STRING, city STRING, postcode STRING, country STRING, date_of_birth DATE, "
    "loyalty_tier STRING, email_opt_in BOOLEAN, email_opt_in_at TIMESTAMP, updated_at TIMESTAMP" + LINEAGE
)
ITEM = "STRUCT<sku: STRING, product_id: STRING, name: STRING, category: STRING, quantity: INT, unit_price: DECIMAL(18,2)>"
ORDERS = (
    "order_id STRING, store_id STRING, channel STRING, order_ts TIMESTAMP, currency STRING, status STRING, "
    "customer_name STRING, customer_email STRING, customer_phone STRING, total DECIMAL(18,2), "
    f"item_count INT, line_items ARRAY<{ITEM}>" + LINEAGE
)


def land(env, source: str, name: str, content: str, day: str = "2026-10-05") -> str:
    path = Path(env.paths.landing(source)) / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return f"file:{path}"


def row(ddl: str, **values):
    """A tuple in the column order of ``ddl``, every column not given left null."""
    names = [
        part.strip().split(" ")[0]
        for part in ddl.replace("ARRAY<", "ARRAY(").split(", ")
        if " " in part.strip()
    ]
    names = [n for n in names if n.isidentifier()]
    unknown = set(values) - set(names)
    assert not unknown, unknown
    return tuple(values.get(n) for n in names)


def crm_csv(*rows: dict[str, str]) -> str:
    return (
        ",".join(CRM_COLUMNS)
        + "\n"
        + "".join(",".join(r.get(c, "") for c in CRM_COLUMNS) + "\n" for r in rows)
    )


M1 = '{"messageId":"m1","type":"track","event":"Signed Up","userId":"u1","timestamp":"2026-10-05T10:00:00+02:00"}'
M2 = '{"messageId":"m2","type":"page","anonymousId":"a2","timestamp":"2026-10-05T11:00:00Z"}'
E1 = '{"email":"Ann@Example.com","timestamp":1791200000,"event":"delivered","sg_event_id":"e1","sg_message_id":"s1"}'
E2 = '{"email":"nobody","timestamp":1791200000,"event":"open","sg_event_id":"e2"}'
O1 = (
    '{"order_id":"o1","store_id":"s1","channel":"pos","ordered_at":"2026-10-05T12:00:00Z","currency":"GBP",'
    '"status":"completed","customer":{"name":"ann smith"},'
    '"line_items":[{"sku":"k1","product_id":"p1","name":"Sock","category":"Apparel","quantity":2,"unit_price":4.5}],'
    '"total":9}'
)
O2 = '{"channel":"web","ordered_at":"2026-10-05T12:00:00Z","status":"completed","total":1,"line_items":[]}'


def test_bronze_to_silver_end_to_end_with_reruns_and_late_updates(spark, lake_env):
    paths = lake_env.paths
    ev1 = land(lake_env, "events", "events-0001.jsonl", f"{M1}\n{M1}\noops\n")
    em1 = land(lake_env, "email", "email-0001.jsonl", f"{E1}\n{E2}\n")
    or1 = land(lake_env, "orders", "orders-0001.jsonl", f"{O1}\n{O2}\n")
    crm1 = land(
        lake_env,
        "crm",
        "contacts-20261005.csv",
        crm_csv(
            {
                "contact_id": "c1",
                "first_name": "ann",
                "loyalty_tier": "gold",
                "updated_at": "2026-10-03T00:00:00Z",
            },
            # an older version of c1 in the same batch loses to the newer one
            {
                "contact_id": "c1",
                "first_name": "ann",
                "loyalty_tier": "silver",
                "updated_at": "2026-10-01T00:00:00Z",
            },
            {
                "contact_id": "c2",
                "first_name": "bob",
                "loyalty_tier": "silver",
                "updated_at": "2026-10-02T00:00:00Z",
            },
        ),
    )
    ingest_all(spark, lake_env, "run-1", clock=lambda: T1)

    first = build_silver(spark, lake_env, "run-1", clock=lambda: T1, dataset_checks=False)

    # File statistics only on keys, times and lineage: not on raw lines, records or JSON text.
    stats_columns = {
        (layer, name): spark.sql(f"DESCRIBE DETAIL delta.`{paths.table(layer, name)}`")
        .first()["properties"]
        .get(STATS_COLUMNS)
        for layer, name in [
            ("bronze", "events"),
            ("silver", "events"),
            ("silver", "email_events"),
            ("silver", "orders"),
            ("silver", "crm_contacts"),
            ("silver", "crm_contacts_history"),
            ("quarantine", "events"),
            ("quarantine", "crm"),
        ]
    }
    assert stats_columns == {
        ("bronze", "events"): "`_source_file`,`_ingested_at`,`_batch_id`",
        ("silver", "events"): "`message_id`,`event_ts`,`_batch_id`",
        ("silver", "email_events"): "`event_id`,`event_ts`,`_batch_id`",
        ("silver", "orders"): "`order_id`,`order_ts`,`_batch_id`",
        ("silver", "crm_contacts"): "`contact_id`,`updated_at`,`_batch_id`",
        ("silver", "crm_contacts_history"): "`contact_id`,`valid_from`,`_batch_id`",
        ("quarantine", "events"): "`_batch_id`,`_quarantined_at`",
        ("quarantine", "crm"): "`_batch_id`,`_quarantined_at`",
    }

    assert first == {
        # 3 lines: m1 kept, its copy deduplicated, "oops" quarantined
        "events": SilverResult("events", 3, 1, 1, 1, rows_inserted=1, batches=1),
        "email_events": SilverResult("email_events", 2, 1, 1, 0, rows_inserted=1, batches=1),
        # c1@10-03 and c2 inserted; c1@10-01 deduplicated within the batch (all 3 versions
        # go to the history)
        "crm_contacts": SilverResult(
            "crm_contacts", 3, 2, 0, 1, rows_inserted=2, batches=1, history_inserted=3
        ),
        # store id "s1" is not S + three digits: a warning, the order is kept
        "orders": SilverResult(
            "orders",
            2,
            1,
            1,
            0,
            rows_inserted=1,
            batches=1,
            rule_failures=(("orders_store_id_format", "warn", 1),),
        ),
    }
    lin1 = {"_ingested_at": T1, "_batch_id": "run-1:0"}
    assertDataFrameEqual(
        read_table(spark, paths.table("silver", "events")),
        spark.createDataFrame(
            [
                # 10:00 at +02:00 = 08:00 UTC
                row(EVENTS, message_id="m1", type="track", event="Signed Up", user_id="u1",
                    event_ts=dt.datetime(2026, 10, 5, 8, 0, tzinfo=UTC), _source_file=ev1, **lin1),
            ],
            EVENTS,
        ),
    )  # fmt: skip
    assertDataFrameEqual(
        read_table(spark, paths.table("silver", "email_events")),
        spark.createDataFrame(
            [
                # epoch 1791200000 = 2026-10-05 11:33:20 UTC
                row(EMAIL, event_id="e1", message_id="s1", event="delivered", email="ann@example.com",
                    event_ts=dt.datetime(2026, 10, 5, 11, 33, 20, tzinfo=UTC), _source_file=em1, **lin1),
            ],
            EMAIL,
        ),
    )  # fmt: skip
    assertDataFrameEqual(
        read_table(spark, paths.table("silver", "orders")),
        spark.createDataFrame(
            [
                row(ORDERS, order_id="o1", store_id="s1", channel="pos", order_ts=dt.datetime(2026, 10, 5, 12, tzinfo=UTC),
                    currency="GBP", status="completed", customer_name="Ann Smith", total=dt_decimal("9.00"), item_count=2,
                    line_items=[("k1", "p1", "Sock", "Apparel", 2, dt_decimal("4.50"))], _source_file=or1, **lin1),
            ],
            ORDERS,
        ),
    )  # fmt: skip
    for source, record, reasons, uri in [
        ("events", "oops", ["malformed_json"], ev1),
        ("email", E2, ["invalid_email"], em1),
        ("orders", O2, ["missing_order_id"], or1),
    ]:
        assertDataFrameEqual(
            read_table(spark, paths.table("quarantine", source)),
            spark.createDataFrame([(record, reasons, uri, "run-1:0", T1)], QUARANTINE),
        )
    # a clean source still gets its (empty) quarantine table, with the quarantine schema
    assertDataFrameEqual(
        read_table(spark, paths.table("quarantine", "crm")), spark.createDataFrame([], QUARANTINE)
    )

    # nothing new in bronze: no batch, no commit
    versions = {t: table_version(spark, paths.table("silver", t)) for t in SILVER_TABLES}
    assert build_silver(spark, lake_env, "run-2", clock=lambda: T2, dataset_checks=False) == {
        t: SilverResult(t) for t in SILVER_TABLES
    }
    assert {t: table_version(spark, paths.table("silver", t)) for t in SILVER_TABLES} == versions

    # a crash after the writes but before the checkpoint commit: the batch is replayed and
    # neither silver nor quarantine changes (the rows count as deduplicated this time)
    events_ckpt = Path(paths.checkpoint("silver_events"))
    for name in ("0", ".0.crc"):  # the local filesystem keeps a checksum beside each file
        (events_ckpt / "commits" / name).unlink(missing_ok=True)
    replay = build_silver_table(spark, lake_env, "events", "run-2", clock=lambda: T2, dataset_checks=False)
    assert replay == SilverResult("events", 3, 0, 1, 2, batches=1)
    assert table_version(spark, paths.table("silver", "events")) == versions["events"]
    assert read_table(spark, paths.table("quarantine", "events")).count() == 1

    # later files: a copy of a stored event, a new event, a late older c1 and a newer c2
    ev2 = land(lake_env, "events", "events-0001.jsonl", f"{M1}\n{M2}\n", day="2026-10-06")
    crm2 = land(
        lake_env,
        "crm",
        "contacts-20261006.csv",
        crm_csv(
            {
                "contact_id": "c1",
                "first_name": "ann",
                "loyalty_tier": "bronze",
                "updated_at": "2026-10-02T00:00:00Z",
            },
            {
                "contact_id": "c2",
                "first_name": "bob",
                "loyalty_tier": "platinum",
                "updated_at": "2026-10-04T00:00:00Z",
            },
        ),
        day="2026-10-06",
    )
    ingest_all(spark, lake_env, "run-3", clock=lambda: T2)

    third = build_silver(spark, lake_env, "run-3", clock=lambda: T2, dataset_checks=False)

    # the page view m2 has no URL: a warning
    assert third["events"] == SilverResult(
        "events", 2, 1, 0, 1, rows_inserted=1, batches=1, rule_failures=(("events_page_has_url", "warn", 1),)
    )
    # c2 updated; the late c1 (10-02 < stored 10-03) is superseded, not applied. Both are new
    # history versions; they close c1@10-01 (now until 10-02) and c2@10-02 (until 10-04).
    assert third["crm_contacts"] == SilverResult(
        "crm_contacts", 2, 1, 0, 1, rows_updated=1, batches=1, history_inserted=2, history_restated=2
    )
    assert third["email_events"] == SilverResult("email_events")
    lin3 = {"_ingested_at": T2, "_batch_id": "run-3:1"}
    assertDataFrameEqual(
        read_table(spark, paths.table("silver", "crm_contacts")),
        spark.createDataFrame(
            [
                row(CRM, contact_id="c1", first_name="Ann", loyalty_tier="gold",
                    updated_at=dt.datetime(2026, 10, 3, tzinfo=UTC), _source_file=crm1, **lin1),
                row(CRM, contact_id="c2", first_name="Bob", loyalty_tier="platinum",
                    updated_at=dt.datetime(2026, 10, 4, tzinfo=UTC), _source_file=crm2, **lin3),
            ],
            CRM,
        ),
    )  # fmt: skip
    assertDataFrameEqual(
        read_table(spark, paths.table("silver", "events")).select(
            "message_id", "type", "event_ts", "_source_file", "_batch_id"
        ),
        spark.createDataFrame(
            [
                ("m1", "track", dt.datetime(2026, 10, 5, 8, 0, tzinfo=UTC), ev1, "run-1:0"),
                ("m2", "page", dt.datetime(2026, 10, 5, 11, 0, tzinfo=UTC), ev2, "run-3:1"),
            ],
            "message_id STRING, type STRING, event_ts TIMESTAMP, _source_file STRING, _batch_id STRING",
        ),
    )


def test_a_batch_that_does_not_reconcile_fails_before_writing(spark, lake_env, monkeypatch):
    land(lake_env, "events", "events-0001.jsonl", f"{M1}\n{M2}\noops\n")
    ingest_all(spark, lake_env, "run-1", clock=lambda: T1)
    # a conform step that loses a row
    lossy = dataclasses.replace(SILVER_TABLES["events"], check=lambda df, region: check_events(df).limit(2))
    monkeypatch.setitem(SILVER_TABLES, "events", lossy)

    with pytest.raises(StreamingQueryException, match="does not reconcile: rows in 3"):
        build_silver_table(spark, lake_env, "events", "run-1", clock=lambda: T1, dataset_checks=False)
    assert not table_exists(spark, lake_env.paths.table("silver", "events"))
    assert not table_exists(spark, lake_env.paths.table("quarantine", "events"))

    # fixed code: the failed batch is processed again from its checkpoint
    monkeypatch.undo()
    result = build_silver_table(spark, lake_env, "events", "run-2", clock=lambda: T1, dataset_checks=False)
    assert result == SilverResult(
        "events", 3, 2, 1, 0, rows_inserted=2, batches=1, rule_failures=(("events_page_has_url", "warn", 1),)
    )


def dt_decimal(text: str):
    from decimal import Decimal

    return Decimal(text)


def test_an_event_older_than_the_watermark_is_kept_counted_and_logged(spark, lake_env):
    land(lake_env, "events", "events-0001.jsonl", f"{M1}\n")
    ingest_all(spark, lake_env, "run-1", clock=lambda: T1)
    first = build_silver_table(spark, lake_env, "events", "run-1", clock=lambda: T1, dataset_checks=False)
    assert first.rows_late == 0  # nothing stored before: no watermark yet

    # The newest stored event is m1 at 2026-10-05 08:00Z; conf/quality/events.yaml allows 2
    # days of lateness, so the watermark is 2026-10-03 08:00Z: m3 (Oct 1) is late, m4 (Oct 4) is not.
    late = '{"messageId":"m3","type":"track","event":"Signed Up","userId":"u3","timestamp":"2026-10-01T00:00:00Z"}'
    ok = '{"messageId":"m4","type":"track","event":"Signed Up","userId":"u4","timestamp":"2026-10-04T00:00:00Z"}'
    second_file = land(lake_env, "events", "events-0002.jsonl", f"{late}\n{ok}\n", day="2026-10-06")
    ingest_all(spark, lake_env, "run-2", clock=lambda: T2)
    second = build_silver_table(spark, lake_env, "events", "run-2", clock=lambda: T2, dataset_checks=False)

    assert (second.rows_in, second.rows_out, second.rows_late) == (2, 2, 1)
    # late rows are merged like any other: silver holds all three messages
    assert sorted(
        r.message_id for r in read_table(spark, lake_env.paths.table("silver", "events")).collect()
    ) == [
        "m1",
        "m3",
        "m4",
    ]
    assertDataFrameEqual(
        read_table(spark, lake_env.paths.table("quality", "late_arrivals")).drop("_batch_id"),
        spark.createDataFrame(
            [
                (
                    "events",
                    "m3",
                    dt.datetime(2026, 10, 1, 0, 0),
                    dt.datetime(2026, 10, 3, 8, 0),
                    second_file,
                    "run-2",
                )
            ],
            "table STRING, key STRING, event_time TIMESTAMP, watermark TIMESTAMP, _source_file STRING, run_id STRING",
        ),
    )
