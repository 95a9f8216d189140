"""Survivorship rules of the golden attributes: most_recent, source_priority, most_frequent."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from cdplake.config import ConfigError, FeaturesConfig, GoldenSettings, SurvivorshipRule, load_features_config
from cdplake.config.features import GOLDEN_SOURCES, parse_features_config
from cdplake.features import OBSERVED_SOURCES, customer_features, survive

CONF = Path(__file__).resolve().parents[2] / "conf"
UTC = dt.timezone.utc
AS_OF = dt.datetime(2026, 11, 2, tzinfo=UTC)
OBSERVATIONS_DDL = "customer_id STRING, source STRING, observed_at TIMESTAMP, email STRING, phone STRING"
GOLDEN_DDL = "customer_id STRING, email STRING, phone STRING"
P1, P2, P9 = "+447700900001", "+447700900002", "+447700900009"


def ts(month: int, day: int) -> dt.datetime:
    return dt.datetime(2026, month, day, tzinfo=UTC)


@pytest.fixture(scope="module")
def observations(spark):
    return spark.createDataFrame(
        [
            ("cus_a", "crm", ts(10, 1), "ann@crm.com", P1),
            ("cus_a", "orders", ts(10, 5), "ann@till.com", P1),
            ("cus_a", "orders", ts(10, 12), "ann@till.com", P2),
            ("cus_a", "events", ts(10, 20), "ann@web.com", P2),
            ("cus_a", "email_events", ts(10, 25), "ann@mail.com", None),
            # two values observed at the same instant; an undated CRM contact
            ("cus_b", "events", ts(10, 3), "bob@web.com", None),
            ("cus_b", "orders", ts(10, 3), "bob@a.com", None),
            ("cus_b", "crm", None, None, P9),
        ],
        OBSERVATIONS_DDL,
    )


@pytest.mark.parametrize(
    ("rule", "expected"),
    [
        (
            # newest non-null of any source
            SurvivorshipRule("most_recent", ()),
            [
                # email: the email event (10-25); phone: the event (10-20), the email event has none
                ("cus_a", "ann@mail.com", P2),
                # email: events and orders tie at 10-03, the smaller value wins; phone: only CRM's
                ("cus_b", "bob@a.com", P9),
            ],
        ),
        (
            # the shipped default: CRM first, then every other source newest first
            SurvivorshipRule("source_priority", ("crm", "*")),
            [
                ("cus_a", "ann@crm.com", P1),  # both from the CRM row, older than all the rest
                ("cus_b", "bob@a.com", P9),  # no CRM email: the 10-03 tie again; CRM phone
            ],
        ),
        (
            SurvivorshipRule("source_priority", ("events", "*")),
            [
                ("cus_a", "ann@web.com", P2),  # events first, newer email_events value notwithstanding
                # events' email beats the smaller orders value at the same time; no events phone,
                # so "*" (crm, orders, email_events): CRM's undated phone is the only one
                ("cus_b", "bob@web.com", P9),
            ],
        ),
        (
            # only orders: CRM, events and email events are not used at all
            SurvivorshipRule("source_priority", ("orders",)),
            [
                ("cus_a", "ann@till.com", P2),  # the newer order (10-12)
                ("cus_b", "bob@a.com", None),  # CRM's phone is not used
            ],
        ),
        (
            SurvivorshipRule("most_frequent", ()),
            [
                # email: ann@till.com on 2 records, every other on 1
                # phone: P1 on 2 (last 10-05), P2 on 2 (last 10-20): the tie goes to the more recent
                ("cus_a", "ann@till.com", P2),
                # email: 1 record each, both last seen 10-03: the smaller value
                ("cus_b", "bob@a.com", P9),
            ],
        ),
    ],
    ids=["most_recent", "crm_then_rest", "events_then_rest", "orders_only", "most_frequent"],
)
def test_survivorship_rules(spark, observations, rule, expected):
    got = survive(observations, GoldenSettings(default=rule), ("email", "phone"))
    assertDataFrameEqual(got, spark.createDataFrame(expected, GOLDEN_DDL))


def test_each_attribute_follows_its_own_rule(spark, observations):
    settings = GoldenSettings(
        default=SurvivorshipRule("most_recent", ()),
        attributes={"phone": SurvivorshipRule("source_priority", ("crm",))},
    )
    got = survive(observations, settings, ("email", "phone"))
    # email by the default (most_recent, as above); phone from CRM only
    expected = [("cus_a", "ann@mail.com", P1), ("cus_b", "bob@a.com", P9)]
    assertDataFrameEqual(got, spark.createDataFrame(expected, GOLDEN_DDL))


def test_profile_uses_the_configured_rules_over_silver(spark):
    cfg = parse_features_config(
        {
            "golden": {
                "default": "most_recent",
                "attributes": {"last_name": {"rule": "source_priority", "sources": ["events", "crm"]}},
            }
        }
    )
    crm = spark.createDataFrame(
        [("k1", "ann@crm.com", None, None, "Smith", "London", None, None, None, ts(10, 1))],
        "contact_id STRING, email STRING, phone STRING, first_name STRING, last_name STRING, city STRING, "
        "postcode STRING, country STRING, loyalty_tier STRING, updated_at TIMESTAMP",
    )
    events = spark.createDataFrame(
        [
            ("m1", "Identify", ts(10, 10), "ann@web.com", None, None, "Smyth"),
            ("m2", "Identify", ts(11, 5), "ann@future.com", None, None, None),  # after as_of: not used
        ],
        "message_id STRING, event STRING, event_ts TIMESTAMP, email STRING, phone STRING, "
        "first_name STRING, last_name STRING",
    )
    orders = spark.createDataFrame(
        [("o1", ts(10, 20), "completed", Decimal("5.00"), "ann@till.com", None)],
        "order_id STRING, order_ts TIMESTAMP, status STRING, total DECIMAL(12,2), "
        "customer_email STRING, customer_phone STRING",
    )
    record_customer = spark.createDataFrame(
        [
            ("crm_contacts", "k1", "cus_a"),
            ("events", "m1", "cus_a"),
            ("events", "m2", "cus_a"),
            ("orders", "o1", "cus_a"),
        ],
        "source STRING, record_key STRING, customer_id STRING",
    )
    silver = {"crm_contacts": crm, "events": events, "orders": orders}
    got = customer_features(silver, record_customer, AS_OF, config=cfg)
    expected = spark.createDataFrame(
        # email: the order's customer_email (10-20) is the newest up to as_of (m2 is after it)
        # last_name: events before CRM, whatever the dates; city: only CRM has one
        [("cus_a", "ann@till.com", "Smyth", "London")],
        "customer_id STRING, email STRING, last_name STRING, city STRING",
    )
    assertDataFrameEqual(got.select("customer_id", "email", "last_name", "city"), expected)


def test_shipped_rules_are_the_defaults_crm_then_newest():
    # tests/unit/test_features.py pins what these defaults compute
    shipped = load_features_config(CONF).golden
    assert (
        shipped
        == FeaturesConfig().golden
        == GoldenSettings(SurvivorshipRule("source_priority", ("crm", "*")))
    )
    assert shipped.rule_for("phone") == shipped.default
    # every source a rule may name is one the profile reads
    assert tuple(OBSERVED_SOURCES) == GOLDEN_SOURCES


def golden(**body) -> dict:
    return {"golden": body}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (golden(default={"rule": "newest"}), r"golden\.default\.rule must be one of \['most_recent'"),
        (golden(attributes={"phone": "latest"}), r"golden\.attributes\.phone\.rule must be one of"),
        (golden(attributes={"mobile": "most_recent"}), r"golden\.attributes: unknown key\(s\) \['mobile'\]"),
        (
            golden(attributes={"phone": {"rule": "source_priority", "sources": ["crm", "web"]}}),
            r"golden\.attributes\.phone\.sources: unknown source 'web'",
        ),
        (golden(default={"rule": "source_priority"}), r"golden\.default\.sources must be a non-empty list"),
        (
            golden(default={"rule": "source_priority", "sources": ["crm", "*", "crm"]}),
            r"golden\.default\.sources: \['crm'\] listed more than once",
        ),
        (
            golden(attributes={"email": {"rule": "most_recent", "sources": ["crm"]}}),
            r"golden\.attributes\.email\.sources applies to rule source_priority only",
        ),
        (
            golden(attributes={"email": {"rule": "most_recent", "window": 3}}),
            r"golden\.attributes\.email: unknown key",
        ),
        (golden(rules={}), r"golden: unknown key\(s\) \['rules'\]"),
    ],
)
def test_golden_config_validation(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_features_config(raw)
