"""Consent: CRM opt-in merge, withdrawals after opt-in, hard bounces, and the publishing gate."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from cdplake.config import ConsentRules, NeverLinkRules, Purpose, SegmentDefinition
from cdplake.privacy import ConsentError, customer_consent, enforce_consent, with_consent

UTC = dt.timezone.utc
CRM_DDL = "contact_id STRING, email_opt_in BOOLEAN, email_opt_in_at TIMESTAMP, updated_at TIMESTAMP"
EMAIL_DDL = "event_id STRING, event STRING, event_ts TIMESTAMP, bounce_type STRING"
RC_DDL = "source STRING, record_key STRING, customer_id STRING"
RULES = NeverLinkRules(placeholder_emails=("test@example.com",))


def ts(month: int, day: int) -> dt.datetime:
    return dt.datetime(2026, month, day, tzinfo=UTC)


@pytest.fixture
def consent_inputs(spark):
    crm = spark.createDataFrame(
        [
            ("k_unsub", True, ts(9, 1), ts(9, 1)),
            ("k_reopt", True, ts(10, 15), ts(10, 15)),
            ("k_hard", True, ts(9, 1), ts(9, 1)),
            ("k_blocked", True, ts(9, 1), ts(9, 1)),
            # merged: opted in on 08-01, the other contact refused on 09-01 -> refusal wins
            ("k_out_in", True, ts(8, 1), ts(8, 1)),
            ("k_out_no", False, None, ts(9, 1)),
            # merged: refused on 09-01, opted in again on 10-01 -> the newer opt-in wins
            ("k_new_no", False, None, ts(9, 1)),
            ("k_new_in", True, ts(10, 1), ts(10, 2)),
            ("k_bademail", True, ts(9, 1), ts(9, 1)),
            ("k_placeholder", True, ts(9, 1), ts(9, 1)),
            # opt-in without an opt-in date falls back to updated_at
            ("k_undated", True, None, ts(9, 3)),
        ],
        CRM_DDL,
    )
    email = spark.createDataFrame(
        [
            ("e1", "unsubscribe", ts(10, 1), None),  # after k_unsub's 09-01 opt-in
            ("e2", "group_unsubscribe", ts(10, 1), None),  # before k_reopt's 10-15 opt-in
            ("e3", "bounce", ts(10, 1), "bounce"),
            ("e4", "bounce", ts(10, 1), "blocked"),
            ("e5", "spamreport", ts(10, 1), None),  # no CRM contact at all
            ("e6", "open", ts(10, 1), None),
        ],
        EMAIL_DDL,
    )
    record_customer = spark.createDataFrame(
        [
            ("crm_contacts", "k_unsub", "c_unsub"),
            ("email_events", "e1", "c_unsub"),
            ("crm_contacts", "k_reopt", "c_reopt"),
            ("email_events", "e2", "c_reopt"),
            ("crm_contacts", "k_hard", "c_hard"),
            ("email_events", "e3", "c_hard"),
            ("crm_contacts", "k_blocked", "c_blocked"),
            ("email_events", "e4", "c_blocked"),
            ("crm_contacts", "k_out_in", "c_merge_out"),
            ("crm_contacts", "k_out_no", "c_merge_out"),
            ("crm_contacts", "k_new_no", "c_merge_new"),
            ("crm_contacts", "k_new_in", "c_merge_new"),
            ("crm_contacts", "k_bademail", "c_bademail"),
            ("crm_contacts", "k_placeholder", "c_placeholder"),
            ("crm_contacts", "k_undated", "c_undated"),
            ("email_events", "e5", "c_nocrm"),
            ("email_events", "e6", "c_nocrm"),
        ],
        RC_DDL,
    )
    return {"crm_contacts": crm, "email_events": email}, record_customer


def test_customer_consent_flags(spark, consent_inputs):
    silver, record_customer = consent_inputs
    got = customer_consent(silver, record_customer)
    expected = spark.createDataFrame(
        [
            ("c_unsub", True, ts(9, 1), True, False, False, False),
            ("c_reopt", True, ts(10, 15), False, False, False, False),
            ("c_hard", True, ts(9, 1), False, True, False, False),
            ("c_blocked", True, ts(9, 1), False, False, False, False),
            ("c_merge_out", False, None, False, False, False, True),  # the refusal is on record
            ("c_merge_new", True, ts(10, 1), False, False, False, False),
            ("c_bademail", True, ts(9, 1), False, False, False, False),
            ("c_placeholder", True, ts(9, 1), False, False, False, False),
            ("c_undated", True, ts(9, 3), False, False, False, False),
            # never opted in; a spam report with no opt-in to come after still counts, and is
            # a complaint; no CRM answer at all is not a refusal
            ("c_nocrm", False, None, True, False, True, False),
        ],
        "customer_id STRING, email_opt_in BOOLEAN, email_opt_in_at TIMESTAMP, "
        "email_unsubscribed BOOLEAN, email_hard_bounced BOOLEAN, email_complained BOOLEAN, "
        "email_opted_out BOOLEAN",
    )
    assertDataFrameEqual(got, expected)


def test_can_email_marketing_needs_everything(spark, consent_inputs):
    silver, record_customer = consent_inputs
    profile = spark.createDataFrame(
        [
            ("c_unsub", "u@x.com"),
            ("c_reopt", "r@x.com"),
            ("c_hard", "h@x.com"),
            ("c_blocked", "b@x.com"),
            ("c_merge_out", "o@x.com"),
            ("c_merge_new", "n@x.com"),
            ("c_bademail", "not-an-email"),
            ("c_placeholder", "test@example.com"),
            ("c_undated", None),
            ("c_nocrm", "s@x.com"),
        ],
        "customer_id STRING, email STRING",
    )
    got = with_consent(profile, customer_consent(silver, record_customer), RULES).select(
        "customer_id", "has_valid_email", "can_email_marketing"
    )
    expected = spark.createDataFrame(
        [
            ("c_unsub", True, False),  # unsubscribed after opting in
            ("c_reopt", True, True),  # opted in again after unsubscribing
            ("c_hard", True, False),  # hard bounce
            ("c_blocked", True, True),  # "blocked" bounce does not suppress
            ("c_merge_out", True, False),  # the refusing contact wins
            ("c_merge_new", True, True),  # newer explicit opt-in beats the refusal
            ("c_bademail", False, False),
            ("c_placeholder", False, False),  # placeholder email is nobody's address
            ("c_undated", False, False),  # opted in, but no email to send to
            ("c_nocrm", True, False),  # never opted in
        ],
        "customer_id STRING, has_valid_email BOOLEAN, can_email_marketing BOOLEAN",
    )
    assertDataFrameEqual(got, expected)


def test_enforce_consent_filters_by_purpose_and_counts(spark):
    purposes = {
        "marketing_email": Purpose("marketing_email", ("can_email_marketing",)),
        "transactional_email": Purpose("transactional_email", ("has_valid_email",)),
    }
    defs = (
        SegmentDefinition("promo", 1, "", "marketing_email", "true"),
        SegmentDefinition("receipts", 1, "", "transactional_email", "true"),
        SegmentDefinition("nobody", 1, "", "marketing_email", "false"),
    )
    profile = spark.createDataFrame(
        [("a", True, True), ("b", False, True), ("c", False, False), ("d", None, None)],
        "customer_id STRING, can_email_marketing BOOLEAN, has_valid_email BOOLEAN",
    )
    members = spark.createDataFrame(
        [(s, c, 1, "{}") for s in ("promo", "receipts") for c in "abcd"],
        "segment_id STRING, customer_id STRING, definition_version INT, qualified_values STRING",
    )
    allowed, excluded = enforce_consent(members, profile, defs, purposes)
    assertDataFrameEqual(
        allowed,
        spark.createDataFrame(
            [("promo", "a", 1, "{}"), ("receipts", "a", 1, "{}"), ("receipts", "b", 1, "{}")],
            "segment_id STRING, customer_id STRING, definition_version INT, qualified_values STRING",
        ),
    )
    # promo: b, c, d lack can_email_marketing (null counts as no); receipts: c, d lack an email
    assertDataFrameEqual(
        excluded,
        spark.createDataFrame(
            [("promo", 3), ("receipts", 2), ("nobody", 0)], "segment_id STRING, excluded_no_consent BIGINT"
        ),
    )


def test_enforce_consent_needs_the_required_columns(spark):
    purposes = {"marketing_email": Purpose("marketing_email", ("can_email_marketing",))}
    defs = (SegmentDefinition("promo", 1, "", "marketing_email", "true"),)
    profile = spark.createDataFrame([("a",)], "customer_id STRING")
    members = spark.createDataFrame(
        [("promo", "a", 1, "{}")],
        "segment_id STRING, customer_id STRING, definition_version INT, qualified_values STRING",
    )
    with pytest.raises(ConsentError, match="can_email_marketing"):
        enforce_consent(members, profile, defs, purposes)


def test_opt_in_by_country_complaints_and_refusals(spark):
    """GB needs an opt-in, the US does not; a refusal, complaint or unknown country always blocks."""
    rules = ConsentRules(
        opt_in_required_countries=("GB",),
        opt_in_required_elsewhere=False,
        opt_in_required_when_unknown=True,
        country_aliases={"UK": "GB", "USA": "US"},
    )
    crm = spark.createDataFrame(
        [
            ("k_gb_in", True, ts(9, 1), ts(9, 1)),
            ("k_us_refused", False, None, ts(9, 1)),
            ("k_gb_complained", True, ts(10, 15), ts(10, 15)),  # opted in again after the complaint
        ],
        CRM_DDL,
    )
    email = spark.createDataFrame(
        [("e1", "spamreport", ts(10, 1), None), ("e2", "spamreport", ts(10, 1), None)], EMAIL_DDL
    )
    record_customer = spark.createDataFrame(
        [
            ("crm_contacts", "k_gb_in", "gb_in"),
            ("crm_contacts", "k_us_refused", "us_refused"),
            ("crm_contacts", "k_gb_complained", "gb_complained"),
            ("email_events", "e1", "gb_complained"),
            ("email_events", "e2", "us_complained"),
            ("email_events", "e9", "us"),
            ("email_events", "e9", "uk"),
            ("email_events", "e9", "nowhere"),
            ("email_events", "e9", "blank"),
            ("email_events", "e9", "england"),
            ("email_events", "e9", "gbr"),
        ],
        RC_DDL,
    )
    profile = spark.createDataFrame(
        [
            ("us", "us@x.com", "USA"),
            ("uk", "uk@x.com", " uk "),
            ("gb_in", "gb@x.com", "GB"),
            ("us_refused", "r@x.com", "US"),
            ("us_complained", "c@x.com", "us"),
            ("gb_complained", "g@x.com", "GB"),
            ("nowhere", "n@x.com", None),
            ("blank", "b@x.com", " "),
            ("england", "e@x.com", "England"),  # no configured alias: resolved as silver does
            ("gbr", "3@x.com", "gbr"),
        ],
        "customer_id STRING, email STRING, country STRING",
    )
    consent = customer_consent({"crm_contacts": crm, "email_events": email}, record_customer)
    got = with_consent(profile, consent, RULES, rules).select(
        "customer_id",
        "country_code",
        "opt_in_required",
        "email_complained",
        "email_opted_out",
        "can_email_marketing",
    )
    expected = spark.createDataFrame(
        [
            ("us", "US", False, False, False, True),  # no opt-in needed, nothing against
            ("uk", "GB", True, False, False, False),  # alias resolved; no opt-in
            ("gb_in", "GB", True, False, False, True),
            ("us_refused", "US", False, False, True, False),  # an explicit refusal always blocks
            ("us_complained", "US", False, True, False, False),
            ("gb_complained", "GB", True, True, False, False),  # a complaint outlives a later opt-in
            ("nowhere", None, True, False, False, False),  # unknown country: opt-in required
            ("blank", None, True, False, False, False),
            ("england", "GB", True, False, False, False),  # GB's rule applies: no opt-in, no email
            ("gbr", "GB", True, False, False, False),
        ],
        "customer_id STRING, country_code STRING, opt_in_required BOOLEAN, email_complained BOOLEAN, "
        "email_opted_out BOOLEAN, can_email_marketing BOOLEAN",
    )
    assertDataFrameEqual(got, expected)
