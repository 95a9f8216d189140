"""History of the golden contact attributes: gold/customer_profile_history, SCD type 2.

One row per version of a customer's golden attributes, keyed ``(customer_id, valid_from)``:
``valid_from`` is the ``as_of`` of the run that first saw the values, ``valid_to`` the
``as_of`` of the run that saw them change or the customer disappear (null while current),
``is_current`` and the ``run_id`` that last wrote the row (opened or closed it).

:func:`history_changes` is the pure part: stored rows + this run's attributes in, the rows to
write out. :func:`merge_profile_history` applies them with one MERGE of staged rows: the
current versions to close (keyed by their own ``valid_from``) and the versions to open (keyed
by ``as_of``). Both halves carry the table's real key rather than the classic null merge key
for inserts, so the MERGE itself cannot insert a version twice or close one twice; re-running
a run with the same inputs finds no change and writes nothing.

History moves forward only: a run whose ``as_of`` is earlier than something already
recorded for a customer (a backfill) leaves that customer's history alone, and a run at the
same ``as_of`` as the current version (two stream cycles with a fixed clock) corrects that
version in place instead of opening a zero-length one.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdplake.features.columns import ts_lit
from cdplake.features.profile import ATTRIBUTES
from cdplake.io.delta import SOURCE, TARGET, MergeMetrics, read_table
from cdplake.segments.membership import ensure_table

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

HISTORY_TABLE = "customer_profile_history"
PROFILE_HISTORY_DDL = (
    "customer_id STRING NOT NULL, "
    + "".join(f"{a} STRING, " for a in ATTRIBUTES)
    + "valid_from TIMESTAMP NOT NULL, valid_to TIMESTAMP, is_current BOOLEAN, run_id STRING"
)
HISTORY_COLUMNS = ("customer_id", *ATTRIBUTES, "valid_from", "valid_to", "is_current", "run_id")
#: The staged rows' action column: ``close`` a current version or ``open`` a new one.
ACTION = "_action"


def same_values(left: str, right: str, columns: Sequence[str]) -> Column:
    """Null-safe equality of ``columns`` between two aliased sides (null equals null)."""
    same = F.lit(True)
    for c in columns:
        same = same & F.col(f"{left}.`{c}`").eqNullSafe(F.col(f"{right}.`{c}`"))
    return same


def history_changes(
    stored: DataFrame,
    profile: DataFrame,
    as_of: dt.datetime,
    run_id: str,
    scope: DataFrame | None = None,
) -> DataFrame:
    """The history rows a run writes: versions to close and versions to open.

    Per customer in scope:

    * in ``profile`` without a current version: open one (``valid_from = as_of``);
    * in ``profile`` with a current version whose attributes differ (null-safe): close it
      (``valid_to = as_of``) and open one; when the current version already starts at
      ``as_of``, only the open row, which the MERGE writes over that version;
    * in ``profile`` with equal attributes: nothing;
    * not in ``profile`` with a current version: close it.

    A customer whose stored history holds a ``valid_from`` or ``valid_to`` later than
    ``as_of`` is left out (a backfill does not rewrite history).

    Args:
        stored: rows of gold/customer_profile_history (:data:`HISTORY_COLUMNS`); at least
            every row of the customers in scope.
        profile: ``customer_id`` and :data:`ATTRIBUTES`, one row per customer: the values as
            of ``as_of``.
        as_of: the run's evaluation time.
        run_id: stamped on every row written.
        scope: ``customer_id`` of the customers to look at (a stream cycle's touched and
            removed customers); every customer of ``stored`` and ``profile`` when None.
            A customer in scope but not in ``profile`` is closed.

    Returns:
        ``_action`` (``close``/``open``) and :data:`HISTORY_COLUMNS`: a close row is the stored
        version as it will read once closed, an open row the new current version.
    """
    at = ts_lit(as_of)
    if scope is not None:
        customers = scope.select("customer_id").distinct()
        stored = stored.join(customers, "customer_id", "left_semi")
        profile = profile.join(customers, "customer_id", "left_semi")
    new = profile.select("customer_id", *ATTRIBUTES, F.lit(True).alias("_new"))
    current = stored.where(F.col("is_current")).select(
        "customer_id", *ATTRIBUTES, "valid_from", F.lit(True).alias("_current")
    )
    latest = stored.groupBy("customer_id").agg(
        F.greatest(F.max("valid_from"), F.max("valid_to")).alias("_latest")
    )
    joined = (
        new.alias("n")
        .join(current.alias("c"), "customer_id", "full_outer")
        .join(latest, "customer_id", "left")
        .where(F.col("_latest").isNull() | (F.col("_latest") <= at))
    )
    has_new, has_current = F.col("n._new").isNotNull(), F.col("c._current").isNotNull()
    changed = ~same_values("n", "c", ATTRIBUTES)
    close = has_current & (~has_new | (changed & (F.col("c.valid_from") < at)))
    opened = has_new & (~has_current | changed)
    closed_rows = joined.where(close).select(
        F.lit("close").alias(ACTION),
        "customer_id",
        *(F.col(f"c.{a}").alias(a) for a in ATTRIBUTES),
        F.col("c.valid_from").alias("valid_from"),
        at.alias("valid_to"),
        F.lit(False).alias("is_current"),
        F.lit(run_id).alias("run_id"),
    )
    opened_rows = joined.where(opened).select(
        F.lit("open").alias(ACTION),
        "customer_id",
        *(F.col(f"n.{a}").alias(a) for a in ATTRIBUTES),
        at.alias("valid_from"),
        F.lit(None).cast("timestamp").alias("valid_to"),
        F.lit(True).alias("is_current"),
        F.lit(run_id).alias("run_id"),
    )
    return closed_rows.unionByName(opened_rows)


def merge_profile_history(
    spark: SparkSession,
    path: str,
    profile: DataFrame,
    as_of: dt.datetime,
    run_id: str,
    *,
    scope: DataFrame | None = None,
) -> MergeMetrics:
    """Record this run's golden attributes in gold/customer_profile_history, one MERGE.

    Reads the stored rows of the customers in scope, computes :func:`history_changes` and,
    when there is any, MERGEs them on ``(customer_id, valid_from)``: a close row updates the
    version it names only while that version is current; an open row inserts its version,
    or rewrites the version already stored under its key when the values differ (a rerun at
    the same ``as_of``). Applying the same run twice changes nothing, and does not commit.

    Args:
        spark: the session.
        path: gold/customer_profile_history; created if absent.
        profile: ``customer_id`` and :data:`ATTRIBUTES` (the written gold/customer_profile,
            or a cycle's recomputed rows).
        as_of: the run's evaluation time.
        run_id: stamped on rows opened or closed.
        scope: only these customers (``customer_id``); see :func:`history_changes`.

    Returns:
        Rows the MERGE inserted and updated (zero when nothing changed).
    """
    from delta.tables import DeltaTable

    ensure_table(spark, path, PROFILE_HISTORY_DDL)
    stored = read_table(spark, path)
    # Pinned: the MERGE rewrites the table these changes were computed from.
    changes = history_changes(stored, profile, as_of, run_id, scope).localCheckpoint(eager=True)
    if changes.isEmpty():
        return MergeMetrics()
    src = {c: F.col(f"{SOURCE}.`{c}`") for c in HISTORY_COLUMNS}
    same = same_values(TARGET, SOURCE, ATTRIBUTES)
    result = (
        DeltaTable.forPath(spark, path)
        .alias(TARGET)
        .merge(
            changes.alias(SOURCE),
            f"{TARGET}.customer_id = {SOURCE}.customer_id AND {TARGET}.valid_from = {SOURCE}.valid_from",
        )
        .whenMatchedUpdate(
            condition=(F.col(f"{SOURCE}.{ACTION}") == "close") & F.col(f"{TARGET}.is_current"),
            set={"valid_to": src["valid_to"], "is_current": src["is_current"], "run_id": src["run_id"]},
        )
        .whenMatchedUpdate(
            condition=(F.col(f"{SOURCE}.{ACTION}") == "open") & ~(F.col(f"{TARGET}.is_current") & same),
            set=src,
        )
        .whenNotMatchedInsert(condition=F.col(f"{SOURCE}.{ACTION}") == "open", values=src)
        .execute()
    )
    row = result.first() if result is not None else None
    if row is None:
        return MergeMetrics()
    return MergeMetrics(inserted=int(row["num_inserted_rows"]), updated=int(row["num_updated_rows"]))
