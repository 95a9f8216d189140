"""Survivorship: which observed value of a contact attribute becomes the customer's golden value.

The input is a frame of observations, one row per silver record that resolved to a customer:
``customer_id``, ``source`` (one of :data:`cdplake.config.features.GOLDEN_SOURCES`),
``observed_at`` (when the record says the value was true) and one column per attribute, null
where the record does not carry it. Each attribute's rule (``golden:`` in
``conf/features.yaml``) gives every row a sort key; per customer the smallest key wins and
equal keys go to the smallest value, so the choice is deterministic.

Everything is a Column expression and one aggregation; a ``most_frequent`` attribute adds one
window (the count of records per value). No UDFs, nothing collected to the driver.
"""

from __future__ import annotations

from collections.abc import Sequence

from pyspark.sql import Column, DataFrame, Window
from pyspark.sql import functions as F

from cdplake.config.features import GOLDEN_ATTRIBUTES, OTHER_SOURCES, GoldenSettings, SurvivorshipRule
from cdplake.features.columns import newest_first_key

CUSTOMER = "customer_id"
SOURCE = "source"
OBSERVED_AT = "observed_at"


def source_rank(source: Column, sources: Sequence[str]) -> Column:
    """Position of ``source`` in a ``source_priority`` list (0 first); null when left out.

    Every source the list does not name ranks at the position of ``*`` when the list holds
    one, so those sources compete on recency alone.

    Args:
        source: the observation's source name.
        sources: the rule's sources, in order of preference.
    """
    others = F.lit(sources.index(OTHER_SOURCES) if OTHER_SOURCES in sources else None).cast("int")
    ranked: Column | None = None
    for i, name in enumerate(sources):
        if name == OTHER_SOURCES:
            continue
        ranked = F.when(source == name, F.lit(i)) if ranked is None else ranked.when(source == name, F.lit(i))
    return others if ranked is None else ranked.otherwise(others)


def survivor_key(rule: SurvivorshipRule, attribute: str) -> Column:
    """Sort key of an observation of ``attribute`` under ``rule``; null when it cannot win.

    The key is ``(rank, age)``, smallest first (:func:`newest_first_key`): ``most_recent``
    ranks everything 0, ``source_priority`` ranks by the source's position and
    ``most_frequent`` by minus the number of records carrying the value, with the age of the
    value's newest record. Undated observations lose to dated ones of the same rank. Null
    values, and sources a ``source_priority`` list leaves out, get no key.

    Args:
        rule: the attribute's survivorship rule.
        attribute: the attribute's column in the observations frame.
    """
    value, observed = F.col(attribute), F.col(OBSERVED_AT)
    usable = value.isNotNull()
    if rule.rule == "most_frequent":
        same_value = Window.partitionBy(CUSTOMER, attribute)
        key = newest_first_key(-F.count(F.lit(1)).over(same_value), F.max(observed).over(same_value))
    elif rule.rule == "most_recent":
        key = newest_first_key(F.lit(0), observed)
    else:
        rank = source_rank(F.col(SOURCE), rule.sources)
        usable = usable & rank.isNotNull()
        key = newest_first_key(rank, observed)
    return F.when(usable, key)


def survive(
    observations: DataFrame, settings: GoldenSettings, attributes: Sequence[str] = GOLDEN_ATTRIBUTES
) -> DataFrame:
    """One row per customer with the surviving value of every attribute (null: never observed).

    Each attribute is chosen on its own, so a customer's phone may come from an order while
    the name comes from CRM.

    Args:
        observations: ``customer_id, source, observed_at`` and the ``attributes`` columns.
        settings: the rule of each attribute.
        attributes: the attributes to choose, in output order.

    Returns:
        ``customer_id`` and ``attributes``.
    """
    keyed = observations.select(
        CUSTOMER,
        *attributes,
        *(survivor_key(settings.rule_for(a), a).alias(f"_key_{a}") for a in attributes),
    )
    # min() over structs skips nulls and orders field by field: rank, age, value.
    aggs = [
        F.min(
            F.when(
                F.col(f"_key_{a}").isNotNull(), F.struct(F.col(f"_key_{a}").alias("k"), F.col(a).alias("v"))
            )
        )["v"].alias(a)
        for a in attributes
    ]
    return keyed.groupBy(CUSTOMER).agg(*aggs)
