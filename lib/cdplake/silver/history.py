"""Slowly changing dimension, type 2: every version of a record with its validity interval.

``silver/crm_contacts`` keeps the current state of each contact; ``silver/crm_contacts_history``
keeps every version ever exported, one row per ``(contact_id, valid_from)`` with
``valid_from = updated_at``, ``valid_to`` = the next version's ``updated_at`` (null for the
current version) and ``is_current``. Email opt-in and opt-out changes are columns of the
contact, so each change of consent is a version with the time it took effect.

Versions are ordered by ``updated_at``, never by arrival: a late, older export is inserted
where it belongs (it closes the version before it and is closed by the one after it) and
the current version stays current. A version already stored is never rewritten, so
applying the same rows twice changes nothing; the build also wraps the MERGE in Delta
transaction ids so a replayed micro-batch is skipped outright.

Pure transforms (:func:`history_versions`, :func:`restate`) do the ordering;
:func:`merge_history` reads the stored versions of the contacts a batch touches and MERGEs
only the rows that are new or whose interval changed.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cdplake.io.delta import SOURCE, TARGET, create_if_absent, dml_txn, read_table
from cdplake.silver._common import LINEAGE

VALID_FROM = "valid_from"
VALID_TO = "valid_to"
IS_CURRENT = "is_current"
INTERVAL_COLUMNS = (VALID_FROM, VALID_TO, IS_CURRENT)


@dataclass(frozen=True)
class HistoryMetrics:
    """What one history MERGE did.

    Attributes:
        new_versions: versions in the input (in-batch copies collapsed) not stored yet,
            computed before the MERGE.
        inserted: rows the MERGE inserted (Delta's metric; equals ``new_versions`` unless a
            replay was skipped by its transaction id, when both are zero).
        restated: stored versions whose ``valid_to``/``is_current`` changed.
    """

    new_versions: int = 0
    inserted: int = 0
    restated: int = 0


def history_columns(columns: Sequence[str]) -> list[str]:
    """The history table's columns: the record's, the interval, then lineage."""
    data = [c for c in columns if c not in LINEAGE and c not in INTERVAL_COLUMNS]
    return [*data, *INTERVAL_COLUMNS, *LINEAGE]


def history_versions(rows: DataFrame, key: str, order_by: str) -> DataFrame:
    """One row per ``(key, order_by)`` version with ``valid_from``, lineage kept; no interval yet.

    Copies of one version in the input (the same contact exported twice with the same
    ``updated_at``) collapse to the one ingested last, the same tie-break as the current
    view's dedupe, so the history's current row and ``silver/crm_contacts`` agree.

    Args:
        rows: silver rows (record columns + lineage), several versions per key allowed.
        key: the record key (``contact_id``).
        order_by: the version time (``updated_at``).
    """
    w = Window.partitionBy(key, order_by).orderBy(F.col("_ingested_at").desc(), F.col("_source_file").desc())
    return (
        rows.withColumn("_copy", F.row_number().over(w))
        .where(F.col("_copy") == 1)
        .drop("_copy")
        .withColumn(VALID_FROM, F.col(order_by))
    )


def restate(versions: DataFrame, key: str) -> DataFrame:
    """Give every version its interval: valid until the next version of the same key.

    Args:
        versions: every version of the keys concerned (stored and new), with ``valid_from``;
            any ``valid_to``/``is_current`` columns are recomputed.
        key: the record key.

    Returns:
        ``versions`` in :func:`history_columns` order with ``valid_to`` (null for the
        newest) and ``is_current``.
    """
    base = versions.drop(VALID_TO, IS_CURRENT)
    w = Window.partitionBy(key).orderBy(F.col(VALID_FROM).asc())
    out = base.withColumn(VALID_TO, F.lead(VALID_FROM).over(w))
    out = out.withColumn(IS_CURRENT, F.col(VALID_TO).isNull())
    return out.select(*history_columns(base.columns))


def merge_history(
    rows: DataFrame,
    path: str,
    key: str,
    order_by: str,
    *,
    txn: tuple[str, int] | None = None,
    properties: Mapping[str, str] | None = None,
) -> HistoryMetrics:
    """Add the versions in ``rows`` to the SCD2 table at ``path`` (created on first write).

    Only the keys in ``rows`` are read back; the MERGE inserts versions not yet stored and
    updates the interval of stored versions a late one now splits. Applying the same rows
    again computes no change.

    Args:
        rows: silver rows of one batch (record columns + lineage), not deduplicated by key.
        path: the history table.
        key: the record key.
        order_by: the version time.
        txn: ``(app_id, version)``: a replayed version skips the MERGE
            (:func:`cdplake.io.delta.dml_txn`).
        properties: ``delta.*`` table properties, set when the table is created or lacks
            them (:func:`cdplake.io.delta.create_if_absent`).

    Returns:
        Version counts and what the MERGE did.
    """
    from delta.tables import DeltaTable

    spark = rows.sparkSession
    versions = history_versions(rows, key, order_by)
    columns = history_columns(versions.columns)
    empty = restate(versions, key).select(*columns).limit(0)
    create_if_absent(empty, path, properties=properties)
    stored = read_table(spark, path).join(versions.select(key).distinct(), key, "left_semi")
    new = versions.join(stored.select(key, VALID_FROM), [key, VALID_FROM], "left_anti")
    restated = restate(stored.select(*columns).unionByName(restate(new, key)), key)
    old = stored.select(
        key, VALID_FROM, F.col(VALID_TO).alias("_old_to"), F.col(IS_CURRENT).alias("_old_current")
    )
    changes = (
        restated.join(old, [key, VALID_FROM], "left")
        .where(
            F.col("_old_current").isNull()
            | ~F.col(VALID_TO).eqNullSafe(F.col("_old_to"))
            | (F.col(IS_CURRENT) != F.col("_old_current"))
        )
        .withColumn("_new", F.col("_old_current").isNull())
        .drop("_old_to", "_old_current")
    )
    # Materialise the change set before the MERGE: it was computed from the target itself.
    changes = changes.persist()
    try:
        stats = changes.agg(F.count_if("_new").alias("new"), F.count_if(~F.col("_new")).alias("restated"))
        counted = stats.first()
        if counted["new"] == 0 and counted["restated"] == 0:
            return HistoryMetrics()
        on = f"{TARGET}.`{key}` = {SOURCE}.`{key}` AND {TARGET}.{VALID_FROM} = {SOURCE}.{VALID_FROM}"
        merge = (
            DeltaTable.forPath(spark, path)
            .alias(TARGET)
            .merge(changes.drop("_new").alias(SOURCE), on)
            .whenMatchedUpdate(
                condition=(
                    f"NOT ({TARGET}.{VALID_TO} <=> {SOURCE}.{VALID_TO}) "
                    f"OR {TARGET}.{IS_CURRENT} <> {SOURCE}.{IS_CURRENT}"
                ),
                set={VALID_TO: f"{SOURCE}.{VALID_TO}", IS_CURRENT: f"{SOURCE}.{IS_CURRENT}"},
            )
            .whenNotMatchedInsertAll()
        )
        with dml_txn(spark, txn):
            result = merge.execute()
        row = result.first() if result is not None else None
        return HistoryMetrics(
            new_versions=int(counted["new"]),
            inserted=int(row["num_inserted_rows"]) if row else 0,
            restated=int(row["num_updated_rows"]) if row else 0,
        )
    finally:
        changes.unpersist()
