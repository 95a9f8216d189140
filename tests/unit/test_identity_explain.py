"""identity/customer_links: every link that holds a customer together, with its evidence."""

from __future__ import annotations

import datetime as dt
import hashlib

from pyspark.testing import assertDataFrameEqual

from cdplake.config import IdentityConfig, NeverLinkRules
from cdplake.config.identity import GraphSettings
from cdplake.identity import resolve
from cdplake.identity.limits import DECISIONS_DDL

CRM_DDL = "contact_id STRING, email STRING, phone STRING"
ORDERS_DDL = "order_id STRING, customer_email STRING, customer_phone STRING"
PAIRS_DDL = (
    "source_l STRING, record_key_l STRING, source_r STRING, record_key_r STRING, "
    "match_weight DOUBLE, match_probability DOUBLE, model_version STRING"
)
LINKS_DDL = (
    "customer_id STRING, link_type STRING, rule STRING, item_l STRING, item_r STRING, records BIGINT, "
    "match_weight DOUBLE, match_probability DOUBLE, model_version STRING"
)


def cid(smallest: str) -> str:
    return "cus_" + hashlib.sha256(smallest.encode()).hexdigest()[:16]


def test_every_link_of_a_customer_is_explained(spark):
    # Ann: CRM c1 and web order o1 share her email; a reviewer joined her work address (CRM c2);
    # her till order o2 matched c1 probabilistically. Bob (c3) matched o2 weakly: that link is
    # cut as a weak bridge, so it explains nothing.
    crm = spark.createDataFrame(
        [("c1", "ann@x.com", None), ("c2", "ann@work.com", None), ("c3", "bob@x.com", None)], CRM_DDL
    )
    orders = spark.createDataFrame([("o1", "ann@x.com", None), ("o2", "a.w@y.com", None)], ORDERS_DDL)
    decisions = spark.createDataFrame(
        [
            (
                "must_link",
                "email",
                "ann@x.com",
                "email",
                "ann@work.com",
                "rev",
                dt.datetime(2026, 11, 1),
                "same",
            )
        ],
        DECISIONS_DDL,
    )
    pairs = spark.createDataFrame(
        [
            ("crm_contacts", "c1", "orders", "o2", 9.9, 0.999, "v3"),
            ("orders", "o2", "crm_contacts", "c3", 4.2, 0.95, "v3"),
        ],
        PAIRS_DDL,
    )
    config = IdentityConfig(
        never_link=NeverLinkRules(), graph=GraphSettings(max_iterations=10, checkpoint_every=2)
    )

    frames = resolve(
        {"crm_contacts": crm, "orders": orders}, config, decisions=decisions, probabilistic=pairs
    )

    ann = cid("crm_contact_id:c1")
    assertDataFrameEqual(
        frames.customer_links,
        spark.createDataFrame(
            [
                (ann, "identifier", "shared:email", "email:ann@x.com", None, 2, None, None, None),
                (
                    ann,
                    "must_link",
                    "must_link",
                    "email:ann@work.com",
                    "email:ann@x.com",
                    None,
                    None,
                    None,
                    None,
                ),
                (
                    ann,
                    "probabilistic",
                    "match_probability",
                    "crm_contacts:c1",
                    "orders:o2",
                    None,
                    9.9,
                    0.999,
                    "v3",
                ),
            ],
            LINKS_DDL,
        ),
    )
