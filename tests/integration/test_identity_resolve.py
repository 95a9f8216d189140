"""resolve_identities over silver Delta tables shaped like the contract in ARCHITECTURE.md."""

from __future__ import annotations

import datetime as dt
import hashlib
from decimal import Decimal

import pytest
from pyspark.sql.types import DataType
from pyspark.testing import assertDataFrameEqual

from cdplake.identity import ReviewDecision, record_review_decisions, resolve_identities

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
LINEAGE = "_source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
SILVER_DDL = {
    "events": (
        "message_id STRING, type STRING, event STRING, user_id STRING, anonymous_id STRING, previous_id STRING, "
        "email STRING, phone STRING, first_name STRING, last_name STRING, event_ts TIMESTAMP, page_url STRING, "
        "product_id STRING, product_category STRING, price DECIMAL(12,2), quantity INT, order_id STRING, "
        "revenue DECIMAL(12,2), currency STRING, properties STRING, traits STRING, " + LINEAGE
    ),
    "email_events": (
        "event_id STRING, message_id STRING, event STRING, email STRING, event_ts TIMESTAMP, url STRING, "
        "bounce_type STRING, reason STRING, campaign STRING, user_agent STRING, " + LINEAGE
    ),
    "crm_contacts": (
        "contact_id STRING, first_name STRING, last_name STRING, email STRING, phone STRING, "
        "address_line1 STRING, city STRING, postcode STRING, country STRING, date_of_birth DATE, "
        "loyalty_tier STRING, email_opt_in BOOLEAN, email_opt_in_at TIMESTAMP, updated_at TIMESTAMP, "
        + LINEAGE
    ),
    "orders": (
        "order_id STRING, store_id STRING, channel STRING, order_ts TIMESTAMP, currency STRING, status STRING, "
        "customer_name STRING, customer_email STRING, customer_phone STRING, total DECIMAL(12,2), "
        "item_count INT, line_items STRING, " + LINEAGE
    ),
}


def ts(month: int, day: int) -> dt.datetime:
    return dt.datetime(2026, month, day, 12, tzinfo=UTC)


def cid(smallest: str) -> str:
    return "cus_" + hashlib.sha256(smallest.encode()).hexdigest()[:16]


# Four people: Ann (opted in, recent order, then a cart add), Bob (refused email, recent
# order), Cat (anonymous cart add) and two till orders typed with a placeholder email.
SILVER_ROWS: dict[str, list[dict]] = {
    "events": [
        dict(
            message_id="m1",
            type="identify",
            user_id="user-ann",
            anonymous_id="anon-1",
            email="ann@x.com",
            event_ts=ts(10, 20),
        ),
        dict(
            message_id="m2",
            type="track",
            event="Order Completed",
            anonymous_id="anon-1",
            order_id="ord-1",
            event_ts=ts(10, 20),
        ),
        dict(message_id="m3", type="track", event="Product Added", user_id="user-ann", event_ts=ts(10, 30)),
        dict(
            message_id="m4", type="track", event="Product Added", anonymous_id="anon-3", event_ts=ts(10, 31)
        ),
    ],
    "email_events": [
        dict(event_id="e1", event="open", email="ann@x.com", event_ts=ts(10, 25)),
    ],
    "crm_contacts": [
        dict(
            contact_id="crm-1",
            email="ann@x.com",
            first_name="Ann",
            email_opt_in=True,
            email_opt_in_at=ts(9, 1),
            updated_at=ts(9, 1),
        ),
        dict(
            contact_id="crm-2", email="bob@y.com", first_name="Bob", email_opt_in=False, updated_at=ts(9, 1)
        ),
    ],
    "orders": [
        dict(
            order_id="ord-1",
            channel="web",
            order_ts=ts(10, 20),
            status="completed",
            customer_email="ann@x.com",
            total=Decimal("40.00"),
        ),
        dict(
            order_id="ord-2",
            channel="pos",
            order_ts=ts(10, 25),
            status="completed",
            customer_email="bob@y.com",
            total=Decimal("25.00"),
        ),
        dict(
            order_id="ord-3",
            channel="pos",
            order_ts=ts(9, 1),
            status="completed",
            customer_email="test@example.com",
            total=Decimal("5.00"),
        ),
        dict(
            order_id="ord-4",
            channel="pos",
            order_ts=ts(9, 2),
            status="completed",
            customer_email="test@example.com",
            total=Decimal("6.00"),
        ),
    ],
}

# smallest "id_type:id_value" of each component
ANN = cid("anonymous_id:anon-1")
BOB = cid("crm_contact_id:crm-2")
CAT = cid("anonymous_id:anon-3")
ORD3 = cid("order_id:ord-3")
ORD4 = cid("order_id:ord-4")


def write_silver(spark, env, rows: dict[str, list[dict]] = SILVER_ROWS) -> None:
    """Write the contract-shaped silver tables under the test lake."""
    for table, ddl in SILVER_DDL.items():
        names = DataType.fromDDL(ddl).fieldNames()
        data = [tuple(r.get(n) for n in names) for r in rows.get(table, [])]
        spark.createDataFrame(data, ddl).write.format("delta").mode("overwrite").save(
            env.paths.table("silver", table)
        )


def test_resolve_identities_writes_identity_tables(spark, lake_env):
    write_silver(spark, lake_env)
    result = resolve_identities(spark, lake_env, "run-1")

    def table(name):
        return spark.read.format("delta").load(lake_env.paths.table("identity", name))

    assertDataFrameEqual(
        table("record_customer"),
        spark.createDataFrame(
            [
                ("events", "m1", ANN, "run-1"),
                ("events", "m2", ANN, "run-1"),
                ("events", "m3", ANN, "run-1"),
                ("email_events", "e1", ANN, "run-1"),
                ("crm_contacts", "crm-1", ANN, "run-1"),
                ("orders", "ord-1", ANN, "run-1"),
                ("events", "m4", CAT, "run-1"),
                ("crm_contacts", "crm-2", BOB, "run-1"),
                ("orders", "ord-2", BOB, "run-1"),
                # the shared placeholder email does not merge the two till orders
                ("orders", "ord-3", ORD3, "run-1"),
                ("orders", "ord-4", ORD4, "run-1"),
            ],
            "source STRING, record_key STRING, customer_id STRING, run_id STRING",
        ),
    )
    assertDataFrameEqual(
        table("blocked_identifiers"),
        spark.createDataFrame(
            [
                ("orders", "ord-3", "email", "test@example.com", "placeholder_email", "run-1"),
                ("orders", "ord-4", "email", "test@example.com", "placeholder_email", "run-1"),
            ],
            "source STRING, record_key STRING, id_type STRING, id_value STRING, reason STRING, run_id STRING",
        ),
    )
    # identifiers: m1 4 (user, anon, email... no phone) -> user-ann, anon-1, ann@x.com = 3;
    # m2 anon-1 + ord-1 = 2; m3 1; m4 1; e1 1; crm-1 2; crm-2 2; ord-1..4 2 each = 8 -> 20
    assert result.identifiers == 20
    assert (result.customers, result.records, result.blocked) == (5, 11, 2)
    assert result.blocked_by_reason == {"placeholder_email": 2}
    assert result.unresolved_records == 0


def test_customer_ids_stay_stable_across_runs_and_merges_are_aliased(spark, lake_env):
    def table(name):
        return spark.read.format("delta").load(lake_env.paths.table("identity", name))

    write_silver(spark, lake_env)
    resolve_identities(spark, lake_env, "run-1")
    # Ann is seen under a new, smaller anonymous id (minting from the smallest identifier
    # would now give her a new id), and Cat's anonymous cart identifies as Ann's user.
    rows = {
        **SILVER_ROWS,
        "events": SILVER_ROWS["events"]
        + [
            dict(
                message_id="m5", type="identify", anonymous_id="anon-0", email="ann@x.com", event_ts=ts(11, 1)
            ),
            dict(
                message_id="m6",
                type="identify",
                anonymous_id="anon-3",
                user_id="user-ann",
                event_ts=ts(11, 1),
            ),
        ],
    }
    write_silver(spark, lake_env, rows)
    result = resolve_identities(spark, lake_env, "run-2")
    assert result.id_changes == {"merged": 1}
    resolve_identities(spark, lake_env, "run-3")  # nothing new: no change, no alias

    assertDataFrameEqual(
        table("record_customer").drop("run_id"),
        spark.createDataFrame(
            [
                *(
                    (s, k, ANN)
                    for s, k in [
                        ("events", "m1"),
                        ("events", "m2"),
                        ("events", "m3"),
                        ("events", "m4"),
                        ("events", "m5"),
                        ("events", "m6"),
                        ("email_events", "e1"),
                        ("crm_contacts", "crm-1"),
                        ("orders", "ord-1"),
                    ]
                ),
                ("crm_contacts", "crm-2", BOB),
                ("orders", "ord-2", BOB),
                ("orders", "ord-3", ORD3),
                ("orders", "ord-4", ORD4),
            ],
            "source STRING, record_key STRING, customer_id STRING",
        ),
    )
    assertDataFrameEqual(
        table("identity_changes").select("change", "customer_id", "related_id", "run_id"),
        spark.createDataFrame(
            [
                *(("created", c, None, "run-1") for c in (ANN, BOB, CAT, ORD3, ORD4)),
                ("merged", ANN, CAT, "run-2"),
            ],
            "change STRING, customer_id STRING, related_id STRING, run_id STRING",
        ),
    )
    assertDataFrameEqual(
        table("customer_id_aliases").drop("changed_at"),
        spark.createDataFrame(
            [(CAT, ANN, "merged", "run-2")], "old_id STRING, customer_id STRING, reason STRING, run_id STRING"
        ),
    )


def test_review_decisions_are_honoured_with_stable_ids(spark, lake_env):
    def table(name):
        return spark.read.format("delta").load(lake_env.paths.table("identity", name)).drop("run_id")

    write_silver(spark, lake_env)
    resolve_identities(spark, lake_env, "run-1")
    # A reviewer finds Ann's CRM contact is someone else sharing her email, and that the
    # first till order typed with the placeholder email was Bob's.
    split = ReviewDecision(
        "cannot_link", ("crm_contact_id", "crm-1"), ("user_id", "user-ann"), "rev", "not Ann"
    )
    join = ReviewDecision("must_link", ("crm_contact_id", "crm-2"), ("order_id", "ord-3"), "rev", "receipt")
    assert record_review_decisions(spark, lake_env, [split, join], decided_at=ts(11, 2)) == 2
    result = resolve_identities(spark, lake_env, "run-2")

    # The shared email is what joined them, so it is blocked: the larger part keeps Ann's id,
    # the contact gets a new one, and the email-only event (only that email) has no customer.
    assert result.id_changes == {"split": 1, "merged": 1}
    crm1 = cid("split:crm_contact_id:crm-1")
    assertDataFrameEqual(
        table("record_customer"),
        spark.createDataFrame(
            [
                ("events", "m1", ANN),
                ("events", "m2", ANN),
                ("events", "m3", ANN),
                ("orders", "ord-1", ANN),
                ("crm_contacts", "crm-1", crm1),
                ("events", "m4", CAT),
                ("crm_contacts", "crm-2", BOB),
                ("orders", "ord-2", BOB),
                ("orders", "ord-3", BOB),
                ("orders", "ord-4", ORD4),
            ],
            "source STRING, record_key STRING, customer_id STRING",
        ),
    )
    assertDataFrameEqual(
        table("blocked_identifiers"),
        spark.createDataFrame(
            [
                ("orders", "ord-3", "email", "test@example.com", "placeholder_email"),
                ("orders", "ord-4", "email", "test@example.com", "placeholder_email"),
                *(
                    (source, key, "email", "ann@x.com", "cannot_link")
                    for source, key in [
                        ("events", "m1"),
                        ("email_events", "e1"),
                        ("crm_contacts", "crm-1"),
                        ("orders", "ord-1"),
                    ]
                ),
            ],
            "source STRING, record_key STRING, id_type STRING, id_value STRING, reason STRING",
        ),
    )
    assert result.unresolved_records == 1

    # Withdrawn: Ann is whole again under her id, the split-off id merges back into it.
    clear = ReviewDecision("clear", ("user_id", "user-ann"), ("crm_contact_id", "crm-1"), "rev", "was Ann")
    record_review_decisions(spark, lake_env, [clear], decided_at=ts(11, 3))
    assert resolve_identities(spark, lake_env, "run-3").id_changes == {"merged": 1}
    assert table("record_customer").where(f"customer_id = '{ANN}'").count() == 6
    assert table("customer_id_aliases").where(f"old_id = '{crm1}'").select("customer_id").first()[0] == ANN


def test_probabilistic_edges_above_the_threshold_join_customers(spark, lake_env):
    write_silver(spark, lake_env)
    # What cdplake-score-linkage writes; conf/linkage.yaml links at match_probability >= 0.9.
    edges = spark.createDataFrame(
        [
            ("crm_contacts", "crm-2", "orders", "ord-3", 4.1, 0.95, "v1", "score-1"),  # Bob's till order
            ("crm_contacts", "crm-2", "orders", "ord-4", 0.2, 0.53, "v1", "score-1"),  # too weak
        ],
        "source_l STRING, record_key_l STRING, source_r STRING, record_key_r STRING, match_weight DOUBLE, "
        "match_probability DOUBLE, model_version STRING, run_id STRING",
    )
    edges.write.format("delta").save(lake_env.paths.table("identity", "probabilistic_edges"))

    result = resolve_identities(spark, lake_env, "run-1")

    assert result.probabilistic_links == {"joined": 1, "weak_bridge": 0, "refused": 0}
    rc = spark.read.format("delta").load(lake_env.paths.table("identity", "record_customer"))
    assertDataFrameEqual(
        rc.where("source = 'orders' OR source = 'crm_contacts'").select("record_key", "customer_id"),
        spark.createDataFrame(
            [("crm-1", ANN), ("ord-1", ANN), ("crm-2", BOB), ("ord-2", BOB), ("ord-3", BOB), ("ord-4", ORD4)],
            "record_key STRING, customer_id STRING",
        ),
    )
    # The link is explained in identity/customer_links with its weight and model version.
    links = spark.read.format("delta").load(lake_env.paths.table("identity", "customer_links"))
    assertDataFrameEqual(
        links.where("link_type = 'probabilistic'").select(
            "customer_id", "item_l", "item_r", "match_weight", "match_probability", "model_version", "run_id"
        ),
        spark.createDataFrame(
            [(BOB, "crm_contacts:crm-2", "orders:ord-3", 4.1, 0.95, "v1", "run-1")],
            "customer_id STRING, item_l STRING, item_r STRING, match_weight DOUBLE, match_probability DOUBLE, "
            "model_version STRING, run_id STRING",
        ),
    )
