"""Declared traits (``conf/features.yaml``) compiled to Spark aggregations.

Every trait source is a DataFrame with ``customer_id`` and a time column ``ts``; the traits
of one source become one ``groupBy("customer_id").agg(...)``. Expression traits are SQL over
the assembled profile, applied in declaration order after every aggregate, so an expression
may use aggregates, built-in columns and earlier expressions.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence

from pyspark.errors import AnalysisException, ParseException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdplake.config.features import Trait
from cdplake.features.columns import at_or_before, ts_lit, within_days

MICROS_PER_DAY = 86_400 * 1_000_000
# Aggregates whose value over no rows is a known zero rather than unknown.
ZERO_WHEN_EMPTY = ("count", "count_distinct", "decayed_sum")


class FeatureDefinitionError(ValueError):
    """A declared trait's SQL does not fit its source or the profile."""


def decay_weight(ts: Column, as_of: dt.datetime, half_life_days: float) -> Column:
    """``0.5 ** (age_days / half_life_days)``: 1 at ``as_of``, 1/2 one half-life earlier."""
    age_days = (F.unix_micros(ts_lit(as_of)) - F.unix_micros(ts)) / F.lit(float(MICROS_PER_DAY))
    return F.pow(F.lit(0.5), age_days / F.lit(float(half_life_days)))


def trait_aggregate(trait: Trait, as_of: dt.datetime) -> Column:
    """The aggregate Column of one aggregate trait over its source's rows (time column ``ts``).

    Rows after ``as_of``, outside the window or failing ``filter`` are not aggregated.
    """
    ts = F.col("ts")
    keep = within_days(ts, as_of, trait.window_days) if trait.window_days else at_or_before(ts, as_of)
    if trait.filter:
        keep = keep & F.expr(trait.filter)
    keep = F.coalesce(keep, F.lit(False))
    value = F.expr(trait.column) if trait.column else None
    agg = trait.aggregate
    if agg == "count":
        out = F.count_if(keep) if value is None else F.count(F.when(keep, value))
    elif agg == "count_distinct":
        out = F.count_distinct(F.when(keep, value))
    elif agg == "sum":
        out = F.sum(F.when(keep, value))
    elif agg == "avg":
        out = F.avg(F.when(keep, value))
    elif agg == "min":
        out = F.min(F.when(keep, value))
    elif agg == "max":
        out = F.max(F.when(keep, value))
    elif agg == "decayed_sum":
        assert trait.half_life_days is not None
        weighted = value.cast("double") * decay_weight(ts, as_of, trait.half_life_days)  # type: ignore[union-attr]
        out = F.sum(F.when(keep, weighted))
    else:  # pragma: no cover - the config loader rejects other names
        raise FeatureDefinitionError(f"trait {trait.name!r}: unknown aggregate {agg!r}")
    return out


def _check(df: DataFrame, column: Column, what: str) -> None:
    try:
        df.select(column.alias("_check")).schema  # noqa: B018 - analysis is the check
    except (AnalysisException, ParseException) as exc:
        raise FeatureDefinitionError(f"{what} does not compile: {exc}") from exc


def aggregate_traits(
    sources: Mapping[str, DataFrame], traits: Sequence[Trait], as_of: dt.datetime
) -> list[DataFrame]:
    """One ``customer_id, <trait>...`` frame per source that some aggregate trait reads.

    Traits of a source that is absent are left out here and filled in by :func:`fill_traits`.

    Raises:
        FeatureDefinitionError: a trait's ``column`` or ``filter`` does not compile against its
            source (the message names the trait).
    """
    out = []
    for source, df in sources.items():
        mine = [t for t in traits if not t.is_expression and t.source == source]
        if not mine:
            continue
        aggs = []
        for trait in mine:
            label = f"trait {trait.name!r} over {source}"
            if trait.filter:
                _check(df, F.expr(trait.filter), f"{label}: filter {trait.filter!r}")
            agg = trait_aggregate(trait, as_of)
            if trait.column:
                _check(df, F.expr(trait.column), f"{label}: column {trait.column!r}")
            aggs.append(agg.alias(trait.name))
        out.append(df.groupBy("customer_id").agg(*aggs))
    return out


def fill_traits(profile: DataFrame, traits: Sequence[Trait]) -> DataFrame:
    """Give every aggregate trait a column (0 for counts and decayed sums with no rows), then
    evaluate the expression traits in order.

    Raises:
        FeatureDefinitionError: an expression does not compile against the profile.
    """
    present = set(profile.columns)
    for trait in traits:
        if trait.is_expression:
            column = F.expr(trait.expression)  # type: ignore[arg-type]
            _check(profile, column, f"trait {trait.name!r}: expression {trait.expression!r}")
            profile = profile.withColumn(trait.name, column)
            continue
        value = F.col(trait.name) if trait.name in present else F.lit(None)
        if trait.aggregate in ZERO_WHEN_EMPTY:
            zero = F.lit(0.0) if trait.aggregate == "decayed_sum" else F.lit(0).cast("bigint")
            value = F.coalesce(value, zero)
        if trait.name not in present and trait.aggregate not in ZERO_WHEN_EMPTY:
            value = value.cast("double")
        profile = profile.withColumn(trait.name, value)
    return profile
