"""Identifiers observed on silver records, and the never-link rules that keep some out of the graph."""

from __future__ import annotations

from collections.abc import Mapping

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdplake.config.identity import NeverLinkRules

# silver table -> (source name, record key column). The source name is what
# identity/record_customer stores, so features can join a silver row back to its customer.
SOURCES: dict[str, str] = {
    "events": "message_id",
    "email_events": "event_id",
    "crm_contacts": "contact_id",
    "orders": "order_id",
}

IDENTIFIER_COLUMNS = ("source", "record_key", "id_type", "id_value")

# Segment's e-commerce spec name of the event that carries the web order id.
ORDER_COMPLETED = "Order Completed"


def _ident(id_type: str, value: Column) -> Column:
    return F.struct(F.lit(id_type).alias("id_type"), value.cast("string").alias("id_value"))


def _email(col: str) -> Column:
    # Silver already normalises emails; doing it again is cheap insurance against a source
    # that slipped through, since a case difference would split one person in two.
    return F.lower(F.trim(F.col(col)))


def _phone(col: str) -> Column:
    return F.trim(F.col(col))


def _source_identifiers(silver: Mapping[str, DataFrame], table: str) -> list[Column]:
    if table == "events":
        is_alias = F.col("type") == "alias"
        previous = F.when(is_alias, F.trim(F.col("previous_id")))
        return [
            _ident("user_id", F.trim(F.col("user_id"))),
            _ident("anonymous_id", F.trim(F.col("anonymous_id"))),
            # An alias call's previousId is either an earlier anonymousId or an earlier
            # userId and the message does not say which, so it is offered in both
            # namespaces: it joins whichever one really holds it. Both land on the same
            # record, so this can never merge two people on its own.
            _ident("user_id", previous),
            _ident("anonymous_id", previous),
            _ident("email", _email("email")),
            _ident("phone", _phone("phone")),
            _ident("order_id", F.when(F.col("event") == ORDER_COMPLETED, F.trim(F.col("order_id")))),
        ]
    if table == "email_events":
        return [_ident("email", _email("email"))]
    if table == "crm_contacts":
        return [
            _ident("crm_contact_id", F.trim(F.col("contact_id"))),
            _ident("email", _email("email")),
            _ident("phone", _phone("phone")),
        ]
    if table == "orders":
        return [
            _ident("order_id", F.trim(F.col("order_id"))),
            _ident("email", _email("customer_email")),
            _ident("phone", _phone("customer_phone")),
        ]
    raise KeyError(f"no identifier mapping for silver table {table!r}; known: {sorted(SOURCES)}")


def extract_identifiers(silver: Mapping[str, DataFrame]) -> DataFrame:
    """Every identifier on every silver record, one row each.

    Args:
        silver: silver table name -> DataFrame; any subset of ``events``, ``email_events``,
            ``crm_contacts``, ``orders`` (absent tables contribute nothing).

    Returns:
        Distinct ``source, record_key, id_type, id_value`` rows (``source`` is the silver table
        name). Null and blank values are left out; nothing else is filtered here, see
        :func:`split_never_link`.
    """
    parts: list[DataFrame] = []
    for table, key in SOURCES.items():
        if table not in silver:
            continue
        exploded = silver[table].select(
            F.lit(table).alias("source"),
            F.col(key).cast("string").alias("record_key"),
            F.inline(F.array(*_source_identifiers(silver, table))),
        )
        parts.append(exploded)
    if not parts:
        raise ValueError(f"no silver tables given; expected some of {sorted(SOURCES)}")
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out.where(
        F.col("record_key").isNotNull() & F.col("id_value").isNotNull() & (F.col("id_value") != "")
    ).distinct()


def never_link_reason(id_type: Column | str, id_value: Column, rules: NeverLinkRules) -> Column:
    """Why an identifier must not link records, or null when it may.

    Reasons: ``too_short``, ``junk_value``, ``placeholder_email``, ``blocked_phone`` (the first
    that applies, in that order). ``id_type`` is a column, or a literal type name when every
    value is of one type (then the type test is decided here, not per row).
    """
    lowered = F.lower(id_value)
    placeholder = F.lit(False)
    if rules.placeholder_emails:
        placeholder = placeholder | lowered.isin(list(rules.placeholder_emails))
    for pattern in rules.placeholder_email_patterns:
        placeholder = placeholder | lowered.rlike(pattern)
    blocked_phone = id_value.isin(list(rules.blocked_phones)) if rules.blocked_phones else F.lit(False)
    junk = lowered.isin(list(rules.junk_values)) if rules.junk_values else F.lit(False)
    return (
        F.when(F.length(id_value) < rules.min_length, F.lit("too_short"))
        .when(junk, F.lit("junk_value"))
        .when(_is_type(id_type, "email") & placeholder, F.lit("placeholder_email"))
        .when(_is_type(id_type, "phone") & blocked_phone, F.lit("blocked_phone"))
    )


def _is_type(id_type: Column | str, name: str) -> Column:
    return F.lit(id_type == name) if isinstance(id_type, str) else id_type == name


def flag_never_link(identifiers: DataFrame, rules: NeverLinkRules) -> DataFrame:
    """``identifiers`` with a ``blocked_reason`` column (null when the identifier may link)."""
    return identifiers.withColumn(
        "blocked_reason", never_link_reason(F.col("id_type"), F.col("id_value"), rules)
    )


def split_never_link(identifiers: DataFrame, rules: NeverLinkRules) -> tuple[DataFrame, DataFrame]:
    """Split identifiers into those that may link and those a never-link rule blocks.

    Returns:
        ``(linkable, blocked)``: ``linkable`` has the input columns; ``blocked`` adds
        ``reason``. Every input row is in exactly one of them.
    """
    flagged = flag_never_link(identifiers, rules)
    linkable = flagged.where(F.col("blocked_reason").isNull()).drop("blocked_reason")
    blocked = flagged.where(F.col("blocked_reason").isNotNull()).withColumnRenamed("blocked_reason", "reason")
    return linkable, blocked
