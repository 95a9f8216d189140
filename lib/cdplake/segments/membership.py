"""Segment membership history in Delta, kept with MERGE so the change data feed tells what moved.

A row is one stay in a segment: ``entered_at`` when the customer first qualified,
``exited_at``/``is_member = false`` once they stop qualifying. Re-entering opens a new row. A
customer who still qualifies is left untouched, so the change data feed holds only entries and
exits. The definition version is part of the stay: bumping a segment's version closes the
old stays and opens new ones under the new version.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdplake.features.columns import ts_lit
from cdplake.io.delta import table_version

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

MEMBERSHIP_DDL = (
    "segment_id STRING NOT NULL, customer_id STRING NOT NULL, definition_version INT, "
    "entered_at TIMESTAMP, exited_at TIMESTAMP, is_member BOOLEAN, qualified_values STRING, run_id STRING"
)
SUMMARY_DDL = (
    "run_id STRING NOT NULL, segment_id STRING NOT NULL, definition_version INT, size BIGINT, "
    "excluded_no_consent BIGINT, computed_at TIMESTAMP"
)
CDF_PROPERTY = "delta.enableChangeDataFeed"


def entered_values(at: Column, run_id: str) -> dict[str, Column]:
    """The row a MERGE inserts when a customer enters a segment (source aliased ``s``)."""
    return {
        "segment_id": F.col("s.segment_id"),
        "customer_id": F.col("s.customer_id"),
        "definition_version": F.col("s.definition_version"),
        "entered_at": at,
        "exited_at": F.lit(None).cast("timestamp"),
        "is_member": F.lit(True),
        "qualified_values": F.col("s.qualified_values"),
        "run_id": F.lit(run_id),
    }


def ensure_table(
    spark: SparkSession,
    path: str,
    ddl: str,
    *,
    change_data_feed: bool = False,
    properties: Mapping[str, str] | None = None,
) -> None:
    """Create an empty Delta table at ``path`` unless one exists (CDF must be on from the start),
    with ``properties`` (``delta.*`` table properties) when it creates it."""
    from delta.tables import DeltaTable
    from pyspark.sql.types import DataType, StructType

    if table_version(spark, path) >= 0:
        return  # exists: asked of the log, cheaper than a create-if-not-exists command
    schema = DataType.fromDDL(ddl)
    assert isinstance(schema, StructType)
    builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(schema)
    if change_data_feed:
        builder = builder.property(CDF_PROPERTY, "true")
    for key, value in (properties or {}).items():
        builder = builder.property(key, value)
    builder.execute()


def merge_membership(
    spark: SparkSession,
    path: str,
    members: DataFrame,
    segment_ids: Sequence[str],
    run_id: str,
    run_at: dt.datetime,
) -> None:
    """Record this run's members of ``segment_ids`` in the membership table at ``path``.

    Idempotent: replaying the same members at the same time changes nothing.

    Args:
        spark: the session.
        path: gold/segment_membership; created with the change data feed on if absent.
        members: ``segment_id, customer_id, definition_version, qualified_values``, one row per
            (segment, customer), already filtered by consent.
        segment_ids: the segments evaluated this run. Only their open stays can be closed, so
            a segment missing from the run (removed, or evaluated elsewhere) is left alone.
        run_id: stamped on rows this run opens or closes.
        run_at: the run's evaluation time: ``entered_at`` of new stays, ``exited_at`` of
            closed ones.
    """
    from delta.tables import DeltaTable

    ensure_table(spark, path, MEMBERSHIP_DDL, change_data_feed=True)
    at = ts_lit(run_at)
    closable = (
        F.col("t.is_member") & F.col("t.segment_id").isin(list(segment_ids)) if segment_ids else F.lit(False)
    )
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(
            members.alias("s"),
            "t.is_member AND t.segment_id = s.segment_id AND t.customer_id = s.customer_id "
            "AND t.definition_version = s.definition_version",
        )
        .whenNotMatchedInsert(values=entered_values(at, run_id))
        .whenNotMatchedBySourceUpdate(
            condition=closable,
            set={"exited_at": at, "is_member": F.lit(False), "run_id": F.lit(run_id)},
        )
        .execute()
    )


def upsert_summary(spark: SparkSession, path: str, summary: DataFrame) -> None:
    """Add this run's rows to gold/segment_summary; a replayed run replaces its own rows.

    Args:
        spark: the session.
        path: gold/segment_summary; created if absent.
        summary: rows shaped like :data:`SUMMARY_DDL`.
    """
    from delta.tables import DeltaTable

    from cdplake.io.delta import BOOKKEEPING, compact_now_and_then, ensure_properties

    ensure_table(spark, path, SUMMARY_DDL, properties=BOOKKEEPING)  # rows every run or cycle
    ensure_properties(spark, path, BOOKKEEPING)  # a table created with Delta's auto compaction
    (
        DeltaTable.forPath(spark, path)
        .alias("t")
        .merge(summary.alias("s"), "t.run_id = s.run_id AND t.segment_id = s.segment_id")
        .whenMatchedUpdateAll()
        .whenNotMatchedInsertAll()
        .execute()
    )
    compact_now_and_then(spark, path)
