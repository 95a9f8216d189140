"""Email consent per customer, and the gate that keeps customers without consent out of segments.

Consent does not take an as-of time on purpose: an unsubscribe known today is honoured even
when the features are computed for an earlier date.
"""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdplake.config.identity import NeverLinkRules
from cdplake.config.segments import ConsentRules, Purpose, SegmentDefinition
from cdplake.features.profile import with_customer
from cdplake.identity.extract import never_link_reason

# SendGrid events by which a person withdraws consent.
WITHDRAWALS = ("unsubscribe", "group_unsubscribe", "spamreport")
COMPLAINTS = ("spamreport",)
CONSENT_COLUMNS = (
    "email_opt_in",
    "email_opt_in_at",
    "email_unsubscribed",
    "email_hard_bounced",
    "has_valid_email",
    "can_email_marketing",
    "email_complained",
    "email_opted_out",
    "country_code",
    "opt_in_required",
)
_EMAIL_SHAPE = r"^[^@\s]+@[^@\s]+\.[^@\s.]+$"


class ConsentError(ValueError):
    """A purpose requires a profile column that does not exist."""


def is_valid_email(email: Column, rules: NeverLinkRules | None = None) -> Column:
    """True when ``email`` looks deliverable: one ``@``, a dotted domain, not a placeholder.

    Args:
        email: a normalised (trimmed, lower-case) email.
        rules: never-link rules; their placeholder emails (``test@example.com``...) are not
            anyone's address, so they are not valid either.
    """
    shape = email.isNotNull() & email.rlike(_EMAIL_SHAPE)
    if rules is not None:
        shape = shape & never_link_reason("email", email, rules).isNull()
    return F.coalesce(shape, F.lit(False))


def crm_opt_in(crm_contacts: DataFrame) -> DataFrame:
    """Email opt-in per customer from their CRM contacts (already joined to ``customer_id``).

    A contact with ``email_opt_in = false`` is an explicit refusal dated by its
    ``updated_at``; a contact with ``true`` is an opt-in dated by ``email_opt_in_at`` (else
    ``updated_at``); null says nothing. When contacts merge, a refusal wins unless an opt-in
    is strictly newer than every refusal; an undated refusal always wins.

    Returns:
        ``customer_id, email_opt_in, email_opt_in_at, latest_opt_in_at, email_opted_out``
        where ``email_opt_in_at`` is set only when the customer is opted in,
        ``latest_opt_in_at`` is the newest opt-in whatever the outcome and
        ``email_opted_out`` says a refusal is on record and wins (as opposed to no answer).
    """
    opted_in = F.col("email_opt_in") == F.lit(True)
    refused = F.col("email_opt_in") == F.lit(False)
    agg = crm_contacts.groupBy("customer_id").agg(
        F.max(F.when(opted_in, F.coalesce("email_opt_in_at", "updated_at"))).alias("latest_opt_in_at"),
        F.count_if(opted_in).alias("_opt_ins"),
        F.max(F.when(refused, F.col("updated_at"))).alias("_latest_refusal_at"),
        F.count_if(refused & F.col("updated_at").isNull()).alias("_undated_refusals"),
    )
    opt_in = (
        (F.col("_opt_ins") > 0)
        & (F.col("_undated_refusals") == 0)
        & (
            F.col("_latest_refusal_at").isNull()
            # An opt-in with no date cannot prove it is newer than a refusal.
            | F.coalesce(F.col("latest_opt_in_at") > F.col("_latest_refusal_at"), F.lit(False))
        )
    )
    return agg.select(
        "customer_id",
        opt_in.alias("email_opt_in"),
        F.when(opt_in, F.col("latest_opt_in_at")).alias("email_opt_in_at"),
        "latest_opt_in_at",
        (~opt_in & (F.col("_latest_refusal_at").isNotNull() | (F.col("_undated_refusals") > 0))).alias(
            "email_opted_out"
        ),
    )


def email_suppressions(email_events: DataFrame) -> DataFrame:
    """Latest withdrawal, any hard bounce and any complaint per customer (events joined to ``customer_id``).

    A complaint (spam report) suppresses marketing for good, also after a later opt-in: a
    person who marked the brand as spam is the costliest one to mail again.

    A hard bounce is a ``bounce`` event whose type is ``bounce``; SendGrid's ``blocked`` type is
    a temporary refusal by the receiving server and does not suppress. A bounce without a type
    (older webhook payloads) counts as hard: sending to a dead address hurts deliverability.
    """
    hard = (F.col("event") == "bounce") & F.coalesce(F.lower(F.col("bounce_type")) == "bounce", F.lit(True))
    return email_events.groupBy("customer_id").agg(
        F.max(F.when(F.col("event").isin(*WITHDRAWALS), F.col("event_ts"))).alias("latest_withdrawal_at"),
        (F.count_if(hard) > 0).alias("email_hard_bounced"),
        (F.count_if(F.col("event").isin(*COMPLAINTS)) > 0).alias("email_complained"),
    )


def customer_consent(silver: Mapping[str, DataFrame], record_customer: DataFrame) -> DataFrame:
    """Consent facts per customer that has any record.

    Args:
        silver: silver tables; ``crm_contacts`` and ``email_events`` are used when present.
        record_customer: identity/record_customer.

    Returns:
        ``customer_id, email_opt_in, email_opt_in_at, email_unsubscribed, email_hard_bounced,
        email_complained, email_opted_out``; ``email_unsubscribed`` is true when a withdrawal
        came after the newest opt-in (or there is no opt-in at all).
    """
    customers = record_customer.select("customer_id").distinct()
    if "crm_contacts" in silver:
        crm = with_customer(silver["crm_contacts"], record_customer, "crm_contacts", "contact_id")
        customers = customers.join(crm_opt_in(crm), "customer_id", "left")
    else:
        customers = customers.select(
            "customer_id",
            F.lit(None).cast("boolean").alias("email_opt_in"),
            F.lit(None).cast("timestamp").alias("email_opt_in_at"),
            F.lit(None).cast("timestamp").alias("latest_opt_in_at"),
            F.lit(None).cast("boolean").alias("email_opted_out"),
        )
    if "email_events" in silver:
        em = with_customer(silver["email_events"], record_customer, "email_events", "event_id")
        customers = customers.join(email_suppressions(em), "customer_id", "left")
    else:
        customers = customers.select(
            "*",
            F.lit(None).cast("timestamp").alias("latest_withdrawal_at"),
            F.lit(None).cast("boolean").alias("email_hard_bounced"),
            F.lit(None).cast("boolean").alias("email_complained"),
        )
    withdrawn = F.col("latest_withdrawal_at").isNotNull() & (
        F.col("latest_opt_in_at").isNull() | (F.col("latest_withdrawal_at") > F.col("latest_opt_in_at"))
    )
    return customers.select(
        "customer_id",
        F.coalesce("email_opt_in", F.lit(False)).alias("email_opt_in"),
        "email_opt_in_at",
        withdrawn.alias("email_unsubscribed"),
        F.coalesce("email_hard_bounced", F.lit(False)).alias("email_hard_bounced"),
        F.coalesce("email_complained", F.lit(False)).alias("email_complained"),
        F.coalesce("email_opted_out", F.lit(False)).alias("email_opted_out"),
    )


def country_code(country: Column, rules: ConsentRules) -> Column:
    """An ISO 3166 code from a country as typed: the configured aliases, then silver's spellings.

    The spellings are those :func:`cdplake.silver.columns.normalize_country` resolves. So a
    profile whose country was stored before silver wrote codes, or typed as a name no alias
    lists ("England", "GBR"), still finds its country's opt-in rule. A value naming no country
    is returned cleaned and upper-cased; an empty one is null.
    """
    from cdplake.silver.columns import normalize_country

    spelled = F.upper(F.trim(country))
    out = normalize_country(country)
    if rules.country_aliases:
        mapping = F.create_map(*[F.lit(x) for kv in sorted(rules.country_aliases.items()) for x in kv])
        out = F.coalesce(F.element_at(mapping, spelled), out)
    return F.when(spelled != "", out)


def opt_in_required(code: Column, rules: ConsentRules) -> Column:
    """Whether marketing email to a customer of country ``code`` needs a recorded opt-in."""
    listed = code.isin(*rules.opt_in_required_countries) if rules.opt_in_required_countries else F.lit(False)
    return (
        F.when(code.isNull(), F.lit(rules.opt_in_required_when_unknown))
        .when(listed, F.lit(True))
        .otherwise(F.lit(rules.opt_in_required_elsewhere))
    )


def with_consent(
    profile: DataFrame,
    consent: DataFrame,
    rules: NeverLinkRules | None = None,
    consent_rules: ConsentRules | None = None,
) -> DataFrame:
    """Add the consent flags and ``has_valid_email`` / ``can_email_marketing`` to a profile.

    ``can_email_marketing`` needs a valid email, no unsubscribe after the last opt-in, no
    hard bounce, no complaint, no refusal on record, and an opt-in where the customer's
    country requires one (``consent_rules``; everywhere by default).

    Args:
        profile: one row per ``customer_id`` with the golden ``email`` (and ``country`` when
            known).
        consent: :func:`customer_consent`.
        rules: never-link rules, so placeholder emails do not count as valid.
        consent_rules: the countries that need an opt-in; by default all do.
    """
    consent_rules = consent_rules or ConsentRules()
    joined = profile.join(consent, "customer_id", "left")
    flags = {
        name: F.coalesce(F.col(name), F.lit(False))
        for name in (
            "email_opt_in",
            "email_unsubscribed",
            "email_hard_bounced",
            "email_complained",
            "email_opted_out",
        )
    }
    valid = is_valid_email(F.col("email"), rules)
    code = country_code(F.col("country"), consent_rules) if "country" in profile.columns else F.lit(None)
    needs_opt_in = opt_in_required(code.cast("string"), consent_rules)
    can_market = (
        (flags["email_opt_in"] | ~needs_opt_in)
        & ~flags["email_opted_out"]
        & ~flags["email_unsubscribed"]
        & ~flags["email_hard_bounced"]
        & ~flags["email_complained"]
        & valid
    )
    # New columns go after the original ones: the profile table's contract only grows.
    return joined.select(
        *[c for c in profile.columns],
        flags["email_opt_in"].alias("email_opt_in"),
        F.col("email_opt_in_at"),
        flags["email_unsubscribed"].alias("email_unsubscribed"),
        flags["email_hard_bounced"].alias("email_hard_bounced"),
        valid.alias("has_valid_email"),
        can_market.alias("can_email_marketing"),
        flags["email_complained"].alias("email_complained"),
        flags["email_opted_out"].alias("email_opted_out"),
        code.cast("string").alias("country_code"),
        needs_opt_in.alias("opt_in_required"),
    )


def purpose_allows(purpose: Purpose) -> Column:
    """True when every column the purpose requires is true (null counts as no)."""
    allowed = F.lit(True)
    for name in purpose.requires:
        allowed = allowed & F.coalesce(F.col(name).cast("boolean"), F.lit(False))
    return allowed


def enforce_consent(
    members: DataFrame,
    profile: DataFrame,
    definitions: tuple[SegmentDefinition, ...] | list[SegmentDefinition],
    purposes: Mapping[str, Purpose],
) -> tuple[DataFrame, DataFrame]:
    """Keep only members whose consent covers their segment's purpose.

    Args:
        members: ``segment_id, customer_id, ...`` (see :func:`cdplake.segments.evaluate_segments`).
        profile: the profile with the consent columns.
        definitions: the segments evaluated.
        purposes: purpose name -> :class:`Purpose`.

    Returns:
        ``(allowed, excluded)``: ``allowed`` has the columns of ``members``; ``excluded`` is
        ``segment_id, excluded_no_consent`` for every definition (0 when nobody was left out).

    Raises:
        ConsentError: a purpose requires a column the profile lacks.
    """
    needed = sorted({c for d in definitions for c in purposes[d.purpose].requires})
    missing = [c for c in needed if c not in profile.columns]
    if missing:
        raise ConsentError(f"purposes require profile column(s) {missing} that the profile does not have")
    allowed_expr: Column | None = None
    for d in definitions:
        cond = purpose_allows(purposes[d.purpose])
        is_seg = F.col("segment_id") == d.id
        allowed_expr = F.when(is_seg, cond) if allowed_expr is None else allowed_expr.when(is_seg, cond)
    # A member of a segment not in `definitions` has no known purpose, so is not published.
    gate = F.lit(False) if allowed_expr is None else allowed_expr.otherwise(F.lit(False))
    checked = members.join(profile.select("customer_id", *needed), "customer_id", "left").withColumn(
        "_allowed", gate
    )
    allowed = checked.where(F.col("_allowed")).select(*members.columns)
    session = members.sparkSession
    ids = session.createDataFrame([(d.id,) for d in definitions], "segment_id STRING")
    counted = (
        checked.where(~F.col("_allowed")).groupBy("segment_id").agg(F.count("*").alias("excluded_no_consent"))
    )
    excluded = ids.join(counted, "segment_id", "left").select(
        "segment_id", F.coalesce("excluded_no_consent", F.lit(0)).cast("bigint").alias("excluded_no_consent")
    )
    return allowed, excluded
