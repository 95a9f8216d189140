"""Identity limits: identifier caps and reviewers' must-link / cannot-link decisions."""

from __future__ import annotations

import datetime as dt
import hashlib

import pytest
from pyspark.testing import assertDataFrameEqual

from cdplake.config import ConfigError, IdentityConfig, NeverLinkRules
from cdplake.config.identity import IDENTIFIER_TYPES, GraphSettings, IdentifierLimits, parse_identity_config
from cdplake.identity import resolve
from cdplake.identity.limits import DECISIONS_DDL, current_decisions

CRM_DDL = "contact_id STRING, email STRING, phone STRING"
ORDERS_DDL = "order_id STRING, customer_email STRING, customer_phone STRING"
RECORDS_DDL = "source STRING, record_key STRING, customer_id STRING"
BLOCKED_DDL = "source STRING, record_key STRING, id_type STRING, id_value STRING, reason STRING"
GRAPH = GraphSettings(max_iterations=10, checkpoint_every=2)
T0 = dt.datetime(2026, 11, 1, 9, 0)


def config(**caps: int) -> IdentityConfig:
    return IdentityConfig(
        never_link=NeverLinkRules(),
        graph=GRAPH,
        limits=IdentifierLimits(max_per_customer=tuple(sorted(caps.items()))),
    )


def cid(smallest: str) -> str:
    return "cus_" + hashlib.sha256(smallest.encode()).hexdigest()[:16]


def decisions(spark, *rows):
    return spark.createDataFrame(list(rows), DECISIONS_DDL)


@pytest.fixture
def household(spark):
    """Three CRM contacts typed with one family landline, plus Dan's two records on his mobile."""
    crm = spark.createDataFrame(
        [
            ("c1", "ann@x.com", "+441632960001"),
            ("c2", "bob@x.com", "+441632960001"),
            ("c3", "cat@x.com", "+441632960001"),
            ("c4", "dan@x.com", "+447700900444"),
        ],
        CRM_DDL,
    )
    orders = spark.createDataFrame(
        [
            ("o1", "ann@x.com", "+441632960001"),  # Ann's order: her email and the landline
            ("o2", "dan@work.com", "+447700900444"),  # Dan's order: work email, same mobile
        ],
        ORDERS_DDL,
    )
    return {"crm_contacts": crm, "orders": orders}


def test_without_caps_the_shared_landline_makes_one_customer(spark, household):
    frames = resolve(household, config())
    assert frames.record_customer.select("customer_id").distinct().count() == 2  # family + Dan
    assert frames.blocked.count() == 0


def test_a_cap_splits_instead_of_merging(spark, household):
    frames = resolve(household, config(email=2))

    # The landline would give one customer three emails (cap 2): it is blocked and every
    # contact keeps to their own identifiers. Dan's mobile joins two emails, within the cap.
    ann, bob, cat = cid("crm_contact_id:c1"), cid("crm_contact_id:c2"), cid("crm_contact_id:c3")
    dan = cid("crm_contact_id:c4")
    assertDataFrameEqual(
        frames.record_customer,
        spark.createDataFrame(
            [
                ("crm_contacts", "c1", ann),
                ("orders", "o1", ann),
                ("crm_contacts", "c2", bob),
                ("crm_contacts", "c3", cat),
                ("crm_contacts", "c4", dan),
                ("orders", "o2", dan),
            ],
            RECORDS_DDL,
        ),
    )
    landline = "+441632960001"
    assertDataFrameEqual(
        frames.blocked,
        spark.createDataFrame(
            [("crm_contacts", key, "phone", landline, "cap_exceeded:email") for key in ("c1", "c2", "c3")]
            + [("orders", "o1", "phone", landline, "cap_exceeded:email")],
            BLOCKED_DDL,
        ),
    )


def test_priority_order_decides_which_identifier_joins_first(spark):
    # Ann's two emails are joined by her user id (strong), a stranger's email by a phone she
    # shares with him (weak). Cap 2 emails: the user id joins first and fills the cap, so the
    # phone join is the one refused.
    events = spark.createDataFrame(
        [
            ("m1", "identify", None, "u1", None, None, "ann@x.com", "+447700900555", None),
            ("m2", "identify", None, "u1", None, None, "ann@work.com", None, None),
        ],
        "message_id STRING, type STRING, event STRING, user_id STRING, anonymous_id STRING, "
        "previous_id STRING, email STRING, phone STRING, order_id STRING",
    )
    crm = spark.createDataFrame([("c9", "zed@y.com", "+447700900555")], CRM_DDL)
    frames = resolve({"events": events, "crm_contacts": crm}, config(email=2))

    ann, zed = cid("email:ann@work.com"), cid("crm_contact_id:c9")
    assertDataFrameEqual(
        frames.record_customer,
        spark.createDataFrame(
            [("events", "m1", ann), ("events", "m2", ann), ("crm_contacts", "c9", zed)], RECORDS_DDL
        ),
    )
    assert sorted(tuple(r) for r in frames.blocked.select("record_key", "reason").collect()) == [
        ("c9", "cap_exceeded:email"),
        ("m1", "cap_exceeded:email"),
    ]


def test_cannot_link_keeps_two_people_apart_until_cleared(spark):
    # Two contacts who share a family email: one customer, until a reviewer says otherwise.
    crm = spark.createDataFrame(
        [("c1", "family@x.com", "+447700900001"), ("c2", "family@x.com", "+447700900002")], CRM_DDL
    )
    silver = {"crm_contacts": crm}
    cannot = ("cannot_link", "crm_contact_id", "c1", "crm_contact_id", " c2 ", "rev", T0, "twins")

    frames = resolve(silver, config(), decisions=decisions(spark, cannot))

    assertDataFrameEqual(
        frames.record_customer,
        spark.createDataFrame(
            [
                ("crm_contacts", "c1", cid("crm_contact_id:c1")),
                ("crm_contacts", "c2", cid("crm_contact_id:c2")),
            ],
            RECORDS_DDL,
        ),
    )
    assertDataFrameEqual(
        frames.blocked,
        spark.createDataFrame(
            [
                ("crm_contacts", "c1", "email", "family@x.com", "cannot_link"),
                ("crm_contacts", "c2", "email", "family@x.com", "cannot_link"),
            ],
            BLOCKED_DDL,
        ),
    )

    # A later "clear" of the same pair (either order) withdraws the decision.
    clear = ("clear", "crm_contact_id", "c2", "crm_contact_id", "c1", "rev", T0 + dt.timedelta(hours=1), "")
    frames = resolve(silver, config(), decisions=decisions(spark, cannot, clear))
    assert frames.record_customer.select("customer_id").distinct().count() == 1
    assert frames.blocked.count() == 0


def test_must_link_joins_records_that_share_no_identifier(spark):
    crm = spark.createDataFrame([("c1", "ann@x.com", None)], CRM_DDL)
    orders = spark.createDataFrame([("o1", "ann.smith@y.com", None), ("o2", "bob@y.com", None)], ORDERS_DDL)
    must = ("must_link", "email", " ANN@X.com ", "email", "ann.smith@y.com", "rev", T0, "same person")
    # a decision about an identifier no record holds adds nothing
    ghost = ("must_link", "email", "bob@y.com", "email", "nobody@z.com", "rev", T0, "")

    frames = resolve(
        {"crm_contacts": crm, "orders": orders}, config(), decisions=decisions(spark, must, ghost)
    )

    ann = cid("crm_contact_id:c1")
    assertDataFrameEqual(
        frames.record_customer,
        spark.createDataFrame(
            [("crm_contacts", "c1", ann), ("orders", "o1", ann), ("orders", "o2", cid("email:bob@y.com"))],
            RECORDS_DDL,
        ),
    )


def test_latest_decision_per_pair_wins(spark):
    rows = decisions(
        spark,
        ("must_link", "email", "a@x.com", "email", "b@x.com", "r1", T0, ""),
        ("cannot_link", "email", "B@x.com", "email", "a@x.com", "r2", T0 + dt.timedelta(days=1), ""),
        ("cannot_link", "phone", "+441", "email", "c@x.com", "r1", T0, ""),
        ("clear", "phone", "+441", "email", "c@x.com", "r1", T0 + dt.timedelta(days=1), ""),
    )
    assertDataFrameEqual(
        current_decisions(rows),
        spark.createDataFrame(
            [("cannot_link", "email:a@x.com", "email:b@x.com")],
            "decision STRING, node_a STRING, node_b STRING",
        ),
    )


def test_invalid_decisions_stop_the_run(spark, household):
    bad = decisions(spark, ("merge", "email", "a@x.com", "email", "b@x.com", "r1", T0, ""))
    with pytest.raises(ValueError, match="review_decisions has invalid rows"):
        resolve(household, config(), decisions=bad)


def test_limits_config_is_validated():
    cfg = parse_identity_config({"limits": {"priority": ["email"], "max_per_customer": {"phone": 3}}})
    assert cfg.limits.priority == ("email", *(t for t in IDENTIFIER_TYPES if t != "email"))
    assert cfg.limits.caps == {"phone": 3}
    assert parse_identity_config({}).limits == IdentifierLimits()
    with pytest.raises(ConfigError, match="unknown identifier type 'fax'"):
        parse_identity_config({"limits": {"max_per_customer": {"fax": 1}}})
    with pytest.raises(ConfigError, match="lists an identifier type twice"):
        parse_identity_config({"limits": {"priority": ["email", "email"]}})
    with pytest.raises(ConfigError, match="must be a positive integer"):
        parse_identity_config({"limits": {"max_per_customer": {"email": 0}}})
    assert parse_identity_config({"use_probabilistic_edges": False}).use_probabilistic_edges is False
    with pytest.raises(ConfigError, match="use_probabilistic_edges must be true or false"):
        parse_identity_config({"use_probabilistic_edges": "yes"})


PAIRS_DDL = (
    "source_l STRING, record_key_l STRING, source_r STRING, record_key_r STRING, match_probability DOUBLE"
)
LINKS_DDL = (
    "component_l STRING, component_r STRING, match_probability DOUBLE, record_pairs BIGINT, outcome STRING"
)


def test_probabilistic_links_join_components_within_limits(spark):
    # A till order typed "J Smith" with a different email matched Jo's CRM contact; Max's
    # order matched both Max and Mia, whom a reviewer keeps apart.
    crm = spark.createDataFrame(
        [("c1", "jo@x.com", None), ("c2", "max@x.com", None), ("c3", "mia@x.com", None)], CRM_DDL
    )
    orders = spark.createDataFrame([("o1", "jsmith@y.com", None), ("o2", "m.k@y.com", None)], ORDERS_DDL)
    pairs = spark.createDataFrame(
        [
            ("crm_contacts", "c1", "orders", "o1", 0.95),
            # Strong links: under 0.99 these two would be cut as weak bridges (next test).
            ("crm_contacts", "c2", "orders", "o2", 0.995),
            ("orders", "o2", "crm_contacts", "c3", 0.995),
            ("crm_contacts", "c9", "orders", "o1", 0.99),  # a record no longer in silver: ignored
        ],
        PAIRS_DDL,
    )
    cannot = ("cannot_link", "crm_contact_id", "c2", "crm_contact_id", "c3", "rev", T0, "siblings")

    frames = resolve(
        {"crm_contacts": crm, "orders": orders},
        config(),
        decisions=decisions(spark, cannot),
        probabilistic=pairs,
    )

    jo = cid("crm_contact_id:c1")
    assertDataFrameEqual(
        frames.record_customer,
        spark.createDataFrame(
            [
                ("crm_contacts", "c1", jo),
                ("orders", "o1", jo),
                ("crm_contacts", "c2", cid("crm_contact_id:c2")),
                ("crm_contacts", "c3", cid("crm_contact_id:c3")),
                ("orders", "o2", cid("email:m.k@y.com")),
            ],
            RECORDS_DDL,
        ),
    )
    assertDataFrameEqual(
        frames.probabilistic_links,
        spark.createDataFrame(
            [
                ("crm_contact_id:c1", "email:jsmith@y.com", 0.95, 1, "joined"),
                ("crm_contact_id:c2", "email:m.k@y.com", 0.995, 1, "refused"),
                ("crm_contact_id:c3", "email:m.k@y.com", 0.995, 1, "refused"),
            ],
            LINKS_DDL,
        ),
    )
    assert frames.blocked.count() == 0  # a refused link blocks no identifier

    # Without the decision Max's order joins both.
    frames = resolve({"crm_contacts": crm, "orders": orders}, config(), probabilistic=pairs)
    assert frames.record_customer.select("customer_id").distinct().count() == 2


def test_a_weak_link_that_alone_bridges_two_clusters_is_cut(spark):
    # Ann (CRM c1 + till order o1) and Bob (c2 + o2) are each a strong match; one weak match
    # (0.95) between Ann's order and Bob's contact would merge them and is their only path:
    # a weak bridge, cut. Cy's three records match each other weakly in a triangle: no link
    # is a bridge, so they join although every link is weak.
    crm = spark.createDataFrame(
        [("c1", "ann@x.com", None), ("c2", "bob@x.com", None), ("c3", "cy@x.com", None)], CRM_DDL
    )
    orders = spark.createDataFrame(
        [
            ("o1", "a.w@y.com", None),
            ("o2", "bob.k@y.com", None),
            ("o3", "cy1@y.com", None),
            ("o4", "cy2@y.com", None),
        ],
        ORDERS_DDL,
    )
    pairs = spark.createDataFrame(
        [
            ("crm_contacts", "c1", "orders", "o1", 0.999),
            ("crm_contacts", "c2", "orders", "o2", 0.995),
            ("orders", "o2", "crm_contacts", "c2", 0.97),  # the same two records again: one link
            ("orders", "o1", "crm_contacts", "c2", 0.95),
            ("crm_contacts", "c3", "orders", "o3", 0.95),
            ("orders", "o3", "orders", "o4", 0.95),
            ("orders", "o4", "crm_contacts", "c3", 0.95),
        ],
        PAIRS_DDL,
    )
    silver = {"crm_contacts": crm, "orders": orders}

    frames = resolve(silver, config(), probabilistic=pairs)

    ann, bob, cy = cid("crm_contact_id:c1"), cid("crm_contact_id:c2"), cid("crm_contact_id:c3")
    assertDataFrameEqual(
        frames.record_customer,
        spark.createDataFrame(
            [
                ("crm_contacts", "c1", ann),
                ("orders", "o1", ann),
                ("crm_contacts", "c2", bob),
                ("orders", "o2", bob),
                ("crm_contacts", "c3", cy),
                ("orders", "o3", cy),
                ("orders", "o4", cy),
            ],
            RECORDS_DDL,
        ),
    )
    assertDataFrameEqual(
        frames.probabilistic_links,
        spark.createDataFrame(
            [
                ("crm_contact_id:c1", "email:a.w@y.com", 0.999, 1, "joined"),
                ("crm_contact_id:c2", "email:bob.k@y.com", 0.995, 2, "joined"),  # best of its 2 pairs
                ("crm_contact_id:c2", "email:a.w@y.com", 0.95, 1, "weak_bridge"),
                ("crm_contact_id:c3", "email:cy1@y.com", 0.95, 1, "joined"),
                ("email:cy1@y.com", "email:cy2@y.com", 0.95, 1, "joined"),
                ("crm_contact_id:c3", "email:cy2@y.com", 0.95, 1, "joined"),
            ],
            LINKS_DDL,
        ),
    )

    # With the guard off, the weak bridge merges Ann and Bob.
    off = IdentityConfig(never_link=NeverLinkRules(), graph=GRAPH, weak_bridge_probability=0.0)
    merged = resolve(silver, off, probabilistic=pairs).record_customer
    assert merged.where("record_key IN ('c1', 'c2')").select("customer_id").distinct().count() == 1


def test_weak_bridge_probability_is_validated():
    assert parse_identity_config({"weak_bridge_probability": 0}).weak_bridge_probability == 0.0
    with pytest.raises(ConfigError, match="weak_bridge_probability must be a number from 0 to 1"):
        parse_identity_config({"weak_bridge_probability": 1.5})


def test_bridges_are_the_edges_no_cycle_covers():
    import pandas as pd

    from cdplake.identity.graph import _mark_bridges

    # Two triangles a-b-c and d-e-f joined by c-d, and a tail f-g: c-d and f-g are bridges.
    edges = pd.DataFrame(
        {
            "group": ["g"] * 8,
            "src": ["a", "b", "a", "c", "d", "e", "d", "f"],
            "dst": ["b", "c", "c", "d", "e", "f", "f", "g"],
        }
    )
    assert _mark_bridges(edges)["bridge"].tolist() == [False, False, False, True, False, False, False, True]
    # A chain: every edge is a bridge (and no recursion limit on a long one).
    chain = pd.DataFrame(
        {
            "group": "g",
            "src": [f"n{i:05d}" for i in range(5000)],
            "dst": [f"n{i + 1:05d}" for i in range(5000)],
        }
    )
    assert _mark_bridges(chain)["bridge"].all()
