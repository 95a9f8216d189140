"""Evaluate segment definitions (Spark SQL conditions) over the customer profile."""

from __future__ import annotations

import re
from collections.abc import Sequence

from pyspark.errors import AnalysisException
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import BooleanType

from cdplake.config.segments import SegmentDefinition

MEMBER_COLUMNS = ("segment_id", "customer_id", "definition_version", "qualified_values")

_QUOTED = re.compile(r"'(?:[^'\\]|\\.)*'|\"(?:[^\"\\]|\\.)*\"")
_WORD = re.compile(r"`([^`]+)`|([A-Za-z_][A-Za-z0-9_]*)")


class SegmentDefinitionError(ValueError):
    """A segment's condition or feature list does not fit the profile."""


def condition_columns(condition: str, columns: Sequence[str]) -> list[str]:
    """Profile columns a condition mentions, in profile order.

    A word-level scan rather than a SQL parser: string literals are skipped, and a word counts
    only if it is a profile column, so function names and keywords fall away.
    """
    text = _QUOTED.sub(" ", condition)
    words = {m.group(1) or m.group(2) for m in _WORD.finditer(text)}
    lowered = {w.lower() for w in words}
    return [c for c in columns if c.lower() in lowered]


def compile_condition(profile: DataFrame, definition: SegmentDefinition) -> Column:
    """The definition's condition as a Column, checked against the profile's schema.

    Raises:
        SegmentDefinitionError: the condition does not parse, names unknown columns, or is not
            boolean; the message names the segment and its version.
    """
    label = f"segment {definition.id!r} (version {definition.version})"
    try:
        condition = F.expr(definition.condition)
        dtype = profile.select(condition.alias("_q")).schema["_q"].dataType
    except AnalysisException as exc:
        raise SegmentDefinitionError(
            f"{label}: condition {definition.condition!r} does not compile against the profile: {exc}"
        ) from exc
    if not isinstance(dtype, BooleanType):
        raise SegmentDefinitionError(
            f"{label}: condition {definition.condition!r} is {dtype.simpleString()}, not boolean"
        )
    return condition


def qualified_columns(profile: DataFrame, definition: SegmentDefinition) -> list[str]:
    """Columns recorded as ``qualified_values``: ``features`` if given, else those the condition uses."""
    if definition.features:
        unknown = [c for c in definition.features if c not in profile.columns]
        if unknown:
            raise SegmentDefinitionError(
                f"segment {definition.id!r} (version {definition.version}): features {unknown} "
                "are not profile columns"
            )
        return list(definition.features)
    return condition_columns(definition.condition, profile.columns)


def evaluate_segment(profile: DataFrame, definition: SegmentDefinition) -> DataFrame:
    """Customers of ``profile`` that meet one definition's condition (null counts as not met)."""
    condition = compile_condition(profile, definition)
    cols = qualified_columns(profile, definition)
    # ignoreNullFields=false keeps "last_order_at": null in the record, so a reader can tell
    # "was null" from "was not looked at".
    values = (
        F.to_json(F.struct(*[F.col(c) for c in cols]), {"ignoreNullFields": "false"}) if cols else F.lit("{}")
    )
    return profile.where(condition).select(
        F.lit(definition.id).alias("segment_id"),
        "customer_id",
        F.lit(definition.version).cast("int").alias("definition_version"),
        values.alias("qualified_values"),
    )


def evaluate_segments(profile: DataFrame, definitions: Sequence[SegmentDefinition]) -> DataFrame:
    """Every (segment, customer) pair whose condition holds, before consent is applied.

    Args:
        profile: one row per ``customer_id`` (gold/customer_profile).
        definitions: the segments to evaluate; every condition is compiled first, so a bad one
            fails the run before anything is computed.

    Returns:
        ``segment_id, customer_id, definition_version, qualified_values`` (a JSON string of
        the feature values the condition used, or of the definition's ``features``).

    Raises:
        SegmentDefinitionError: a condition does not compile, or ``features`` names an
            unknown column.
    """
    if not definitions:
        return profile.sparkSession.createDataFrame(
            [], "segment_id STRING, customer_id STRING, definition_version INT, qualified_values STRING"
        )
    for definition in definitions:
        compile_condition(profile, definition)
        qualified_columns(profile, definition)
    parts = [evaluate_segment(profile, d) for d in definitions]
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out
