"""Shared pieces of the per-source conform transforms: checks, the split, lineage."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdplake.silver.columns import strip_whitespace

LINEAGE = ("_source_file", "_ingested_at", "_batch_id")
QUARANTINE_COLUMNS = ("record", "reasons", "_source_file", "_batch_id", "_quarantined_at")
REASONS = "_reasons"
RECORD = "_record"
CONTRACT_ERRORS = "_contract_errors"
CONTRACT = "_contract"


def contract_errors(df: DataFrame) -> Column:
    """A bronze row's ``_contract_errors`` (e.g. ``type_mismatch:total``), as extra reasons.

    Bronze tables written before contracts existed lack the column: no errors then.
    """
    if CONTRACT_ERRORS in df.columns:
        return F.coalesce(F.col(CONTRACT_ERRORS), F.array().cast("array<string>"))
    return F.array().cast("array<string>")


def blank(col: Column) -> Column:
    """True when ``col`` is null or only whitespace (never null itself)."""
    return F.coalesce(strip_whitespace(col) == "", F.lit(True))


def reasons(
    malformed: Column,
    malformed_reason: str,
    checks: Sequence[tuple[Column, str]],
    extra: Column | None = None,
) -> Column:
    """The quarantine reasons of a row as ``ARRAY<STRING>`` (empty when the row is good).

    A malformed record gets only ``malformed_reason``: the field checks mean nothing then.

    Args:
        malformed: true when the raw record could not be parsed at all.
        malformed_reason: e.g. ``malformed_json``.
        checks: ``(failed, reason)`` pairs; ``failed`` must never be null.
        extra: reasons found before this step (an ``ARRAY<STRING>``, e.g. bronze's
            contract errors), added after the checks'.
    """
    failed = [F.when(cond, F.lit(reason)) for cond, reason in checks]
    found = F.array_compact(F.array(*failed))
    if extra is not None:
        found = F.concat(found, extra)
    return F.when(malformed, F.array(F.lit(malformed_reason))).otherwise(found)


def split_checked(
    checked: DataFrame, silver_columns: Sequence[str], quarantined_at: dt.datetime | None = None
) -> tuple[DataFrame, DataFrame]:
    """Split a checked frame (with ``_record`` and ``_reasons``) into silver and quarantine.

    Every input row lands in exactly one of the two outputs.

    Args:
        checked: conformed rows plus ``_record`` (the raw record) and ``_reasons``.
        silver_columns: the silver table's columns, lineage excluded.
        quarantined_at: the quarantine time stamp; Spark's current timestamp by default.

    Returns:
        ``(silver, quarantine)``: silver has ``silver_columns`` + lineage; quarantine has
        ``record, reasons, _source_file, _batch_id, _quarantined_at``.
    """
    ok = F.size(REASONS) == 0
    silver = checked.where(ok).select(*silver_columns, *LINEAGE)
    stamp = F.lit(quarantined_at) if quarantined_at else F.current_timestamp()
    quarantine = checked.where(~ok).select(
        F.col(RECORD).alias("record"),
        F.col(REASONS).alias("reasons"),
        "_source_file",
        "_batch_id",
        stamp.cast("timestamp").alias("_quarantined_at"),
    )
    return silver, quarantine


def records_of_quarantined_rows(checked: DataFrame) -> DataFrame:
    """``checked`` with ``_record`` (the raw record) kept only on rows that have reasons.

    Only the quarantine reads the raw record (:func:`split_checked`); the good rows' silver
    columns come from it already, and bronze keeps every line. The events batch of the
    5,000-people demo, materialised, went from 278 MiB to 133 MiB (BENCHMARKS.md).
    """
    return checked.withColumn(RECORD, F.when(F.size(REASONS) > 0, F.col(RECORD)))


def money(col: Column) -> Column:
    """A JSON number (parsed as a string) as ``DECIMAL(18,2)``, rounded half-up; null if not a number."""
    return col.try_cast("decimal(38,6)").try_cast("decimal(18,2)")


def text(col: Column) -> Column:
    """A free-text field with outer whitespace removed; null when empty."""
    stripped = strip_whitespace(col)
    return F.when(stripped != "", stripped)


def valid_email_or_null(email: Column) -> Column:
    """The normalised email when its syntax is valid, else null."""
    from cdplake.silver.columns import is_valid_email

    return F.when(is_valid_email(email), email)
