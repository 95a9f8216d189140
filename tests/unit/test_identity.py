"""Identity: identifier extraction, never-link rules, connected components, customer ids."""

from __future__ import annotations

import hashlib

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.config import ConfigError, IdentityConfig, NeverLinkRules
from cdplake.config.identity import GraphSettings, parse_identity_config
from cdplake.identity import (
    IdentityGraphError,
    connected_components,
    extract_identifiers,
    mint_customer_id,
    resolve,
    split_never_link,
)

EVENTS_DDL = (
    "message_id STRING, type STRING, event STRING, user_id STRING, anonymous_id STRING, "
    "previous_id STRING, email STRING, phone STRING, order_id STRING"
)
EMAIL_DDL = "event_id STRING, email STRING"
CRM_DDL = "contact_id STRING, email STRING, phone STRING"
ORDERS_DDL = "order_id STRING, customer_email STRING, customer_phone STRING"
IDENT_DDL = "source STRING, record_key STRING, id_type STRING, id_value STRING"

RULES = NeverLinkRules(
    placeholder_emails=("test@example.com",),
    placeholder_email_patterns=("^noreply@",),
    blocked_phones=("+442071234567",),
    junk_values=("undefined",),
    min_length=3,
)
CONFIG = IdentityConfig(never_link=RULES, graph=GraphSettings(max_iterations=10, checkpoint_every=2))


def expected_id(smallest: str) -> str:
    return "cus_" + hashlib.sha256(smallest.encode()).hexdigest()[:16]


def test_extract_identifiers_per_source(spark):
    events = spark.createDataFrame(
        [
            # identify with traits: user, anonymous id, email (upper-case, padded), phone
            ("m1", "identify", None, "u100", "anon-1", None, " Ann@X.com ", "+447700900123", None),
            # alias: previous_id offered as both an anonymous and a user id
            ("m2", "alias", None, "u100", None, "anon-9", None, None, None),
            # order_id only counts on Order Completed
            ("m3", "track", "Order Completed", None, "anon-1", None, None, None, "o-1"),
            ("m4", "track", "Product Viewed", None, "anon-2", None, None, None, "o-ignored"),
            # previous_id outside an alias call is ignored; blank email is dropped
            ("m5", "track", "Page", None, "anon-3", "stale", "", None, None),
        ],
        EVENTS_DDL,
    )
    email = spark.createDataFrame([("e1", "ann@x.com")], EMAIL_DDL)
    crm = spark.createDataFrame([("c1", "ann@x.com", "+447700900123"), ("c2", None, None)], CRM_DDL)
    orders = spark.createDataFrame([("o-1", "ANN@x.com", None)], ORDERS_DDL)

    got = extract_identifiers(
        {"events": events, "email_events": email, "crm_contacts": crm, "orders": orders}
    )

    expected = spark.createDataFrame(
        [
            ("events", "m1", "user_id", "u100"),
            ("events", "m1", "anonymous_id", "anon-1"),
            ("events", "m1", "email", "ann@x.com"),
            ("events", "m1", "phone", "+447700900123"),
            ("events", "m2", "user_id", "u100"),
            ("events", "m2", "user_id", "anon-9"),
            ("events", "m2", "anonymous_id", "anon-9"),
            ("events", "m3", "anonymous_id", "anon-1"),
            ("events", "m3", "order_id", "o-1"),
            ("events", "m4", "anonymous_id", "anon-2"),
            ("events", "m5", "anonymous_id", "anon-3"),
            ("email_events", "e1", "email", "ann@x.com"),
            ("crm_contacts", "c1", "crm_contact_id", "c1"),
            ("crm_contacts", "c1", "email", "ann@x.com"),
            ("crm_contacts", "c1", "phone", "+447700900123"),
            ("crm_contacts", "c2", "crm_contact_id", "c2"),
            ("orders", "o-1", "order_id", "o-1"),
            ("orders", "o-1", "email", "ann@x.com"),
        ],
        IDENT_DDL,
    )
    assertDataFrameEqual(got, expected)


def test_never_link_rules_split_without_losing_rows(spark):
    ids = spark.createDataFrame(
        [
            ("orders", "o1", "email", "test@example.com"),
            ("orders", "o1", "email", "noreply@shop.com"),
            ("orders", "o1", "phone", "+442071234567"),
            ("events", "m1", "user_id", "ab"),
            ("events", "m1", "anonymous_id", "UNDEFINED"),
            ("events", "m1", "email", "ann@x.com"),
            # a blocked phone number is only blocked as a phone
            ("events", "m1", "user_id", "+442071234567"),
        ],
        IDENT_DDL,
    )
    linkable, blocked = split_never_link(ids, RULES)
    assertDataFrameEqual(
        linkable,
        spark.createDataFrame(
            [("events", "m1", "email", "ann@x.com"), ("events", "m1", "user_id", "+442071234567")], IDENT_DDL
        ),
    )
    assertDataFrameEqual(
        blocked,
        spark.createDataFrame(
            [
                ("orders", "o1", "email", "test@example.com", "placeholder_email"),
                ("orders", "o1", "email", "noreply@shop.com", "placeholder_email"),
                ("orders", "o1", "phone", "+442071234567", "blocked_phone"),
                ("events", "m1", "user_id", "ab", "too_short"),
                ("events", "m1", "anonymous_id", "UNDEFINED", "junk_value"),
            ],
            IDENT_DDL + ", reason STRING",
        ),
    )


def test_connected_components_chain_and_separate(spark):
    vertices = spark.createDataFrame([(n,) for n in "abcdefxz"], "node STRING")
    # chain d-c-b-a plus a-e (labels must travel 3 hops to reach d); separate f-x; z alone
    edges = spark.createDataFrame(
        [("d", "c"), ("c", "b"), ("b", "a"), ("e", "a"), ("x", "f")], "src STRING, dst STRING"
    )
    got = connected_components(vertices, edges, max_iterations=10, checkpoint_every=2)
    expected = spark.createDataFrame(
        [("a", "a"), ("b", "a"), ("c", "a"), ("d", "a"), ("e", "a"), ("f", "f"), ("x", "f"), ("z", "z")],
        "node STRING, component STRING",
    )
    assertDataFrameEqual(got, expected)


def test_connected_components_gives_up_with_clear_error(spark):
    vertices = spark.createDataFrame([(n,) for n in "abcdefgh"], "node STRING")
    path = "abcdefgh"
    edges = spark.createDataFrame(list(zip(path[1:], path[:-1], strict=True)), "src STRING, dst STRING")
    with pytest.raises(IdentityGraphError, match="did not converge after 1 rounds"):
        connected_components(vertices, edges, max_iterations=1)


def test_mint_customer_id_is_deterministic(spark):
    df = spark.createDataFrame(
        [("email:ann@x.com",), ("email:ann@x.com",), ("user_id:u1",)], "smallest STRING"
    )
    got = df.select(mint_customer_id(F.col("smallest")).alias("customer_id"))
    # cus_ + first 16 hex of SHA-256 of the id string, computed here independently of Spark
    expected = spark.createDataFrame(
        [(expected_id("email:ann@x.com"),), (expected_id("email:ann@x.com"),), (expected_id("user_id:u1"),)],
        "customer_id STRING",
    )
    assertDataFrameEqual(got, expected)
    assert expected_id("email:ann@x.com") == "cus_" + hashlib.sha256(b"email:ann@x.com").hexdigest()[:16]


def test_resolve_chain_components_and_blocked_placeholder(spark):
    events = spark.createDataFrame(
        [
            # Ann: anonymous browsing, then identify links anon-1 to u1 and her email
            ("m1", "track", "Product Viewed", None, "anon-1", None, None, None, None),
            ("m2", "identify", None, "u01", "anon-1", None, "ann@x.com", None, None),
            # Bob: separate person, separate anonymous id
            ("m3", "identify", None, "u02", "anon-2", None, "bob@y.com", None, None),
        ],
        EVENTS_DDL,
    )
    orders = spark.createDataFrame(
        [
            # the placeholder email would otherwise join Ann's and Bob's orders
            ("o-1", "test@example.com", "+447700900001"),
            ("o-2", "test@example.com", "+447700900002"),
            # Ann's order via her email (chain anon-1 -> u1 -> ann@x.com -> o-3)
            ("o-3", "ann@x.com", None),
        ],
        ORDERS_DDL,
    )
    crm = spark.createDataFrame([("c-bob", "bob@y.com", "+447700900002")], CRM_DDL)
    frames = resolve({"events": events, "orders": orders, "crm_contacts": crm}, CONFIG)

    # smallest node of each component, by string order of "id_type:id_value":
    #   Ann: anonymous_id:anon-1 < email:ann@x.com < order_id:o-3 < user_id:u01
    #   Bob: anonymous_id:anon-2 < crm_contact_id:c-bob < email:bob@y.com < order_id:o-2 ...
    #   order o-1 alone: order_id:o-1 < phone:+447700900001
    ann = expected_id("anonymous_id:anon-1")
    bob = expected_id("anonymous_id:anon-2")
    o1 = expected_id("order_id:o-1")
    assertDataFrameEqual(
        frames.record_customer,
        spark.createDataFrame(
            [
                ("events", "m1", ann),
                ("events", "m2", ann),
                ("orders", "o-3", ann),
                ("events", "m3", bob),
                ("crm_contacts", "c-bob", bob),
                ("orders", "o-2", bob),
                ("orders", "o-1", o1),
            ],
            "source STRING, record_key STRING, customer_id STRING",
        ),
    )
    assertDataFrameEqual(
        frames.customer_map,
        spark.createDataFrame(
            [
                ("anonymous_id", "anon-1", ann),
                ("user_id", "u01", ann),
                ("email", "ann@x.com", ann),
                ("order_id", "o-3", ann),
                ("anonymous_id", "anon-2", bob),
                ("user_id", "u02", bob),
                ("email", "bob@y.com", bob),
                ("crm_contact_id", "c-bob", bob),
                ("phone", "+447700900002", bob),
                ("order_id", "o-2", bob),
                ("order_id", "o-1", o1),
                ("phone", "+447700900001", o1),
            ],
            "id_type STRING, id_value STRING, customer_id STRING",
        ),
    )
    assertDataFrameEqual(
        frames.blocked,
        spark.createDataFrame(
            [
                ("orders", "o-1", "email", "test@example.com", "placeholder_email"),
                ("orders", "o-2", "email", "test@example.com", "placeholder_email"),
            ],
            IDENT_DDL + ", reason STRING",
        ),
    )


def test_identity_config_rejects_bad_values():
    with pytest.raises(ConfigError, match="unknown key"):
        parse_identity_config({"never_link": {"placeholder_email": ["x"]}})
    with pytest.raises(ConfigError, match="not a valid regex"):
        parse_identity_config({"never_link": {"placeholder_email_patterns": ["(unclosed"]}})
    with pytest.raises(ConfigError, match="max_iterations must be a positive integer"):
        parse_identity_config({"graph": {"max_iterations": 0}})
    cfg = parse_identity_config(
        {"never_link": {"placeholder_emails": [" Test@Example.com "], "min_length": 4}}
    )
    assert cfg.never_link.placeholder_emails == ("test@example.com",)
    assert cfg.never_link.min_length == 4
