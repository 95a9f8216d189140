"""Bronze → silver: a Delta stream per bronze table, conformed, deduplicated and merged.

Per micro-batch and table: conform (split into good rows and quarantine), keep one row per
key, MERGE into the silver table, reconcile the counts, then append the quarantined rows.
Every write is idempotent on replay: the MERGE only inserts absent keys (or, for contacts,
only applies a strictly newer ``updated_at``), and the quarantine append carries
``txnAppId``/``txnVersion``. Silver rows keep the lineage of their bronze row.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cdplake.io.delta import (
    AVAILABLE_NOW,
    SOURCE,
    TARGET,
    append,
    create_if_absent,
    merge_into,
    read_stream,
    run_stream,
    table_exists,
)
from cdplake.quality import BatchCounts, ReconciliationError, reconcile
from cdplake.silver import crm, email, events, orders
from cdplake.silver._common import REASONS, split_checked

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdplake.config import EnvConfig

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class SilverTable:
    """How one bronze source becomes one silver table.

    Attributes:
        source: the bronze table and the quarantine table (``events``, ``email``...).
        name: the silver table (``events``, ``email_events``...).
        key: the column identifying a row.
        columns: the silver columns (lineage excluded).
        check: conform function ``(bronze_df, default_region) -> checked_df``.
        newest_by: when set, the row with the greatest value wins and updates the stored
            row only when strictly newer; when None the first row of a key is kept forever.
    """

    source: str
    name: str
    key: str
    columns: tuple[str, ...]
    check: Callable[[DataFrame, str], DataFrame]
    newest_by: str | None = None


def _check_email(df: DataFrame, default_region: str) -> DataFrame:
    return email.check_email(df)


SILVER_TABLES: dict[str, SilverTable] = {
    t.name: t
    for t in (
        SilverTable(
            "events",
            "events",
            events.KEY,
            events.SILVER_COLUMNS,
            lambda df, r: events.check_events(df, default_region=r),
        ),
        SilverTable("email", "email_events", email.KEY, email.SILVER_COLUMNS, _check_email),
        SilverTable(
            "crm",
            "crm_contacts",
            crm.KEY,
            crm.SILVER_COLUMNS,
            lambda df, r: crm.check_crm(df, default_region=r),
            crm.ORDER_BY,
        ),
        SilverTable(
            "orders",
            "orders",
            orders.KEY,
            orders.SILVER_COLUMNS,
            lambda df, r: orders.check_orders(df, default_region=r),
        ),
    )
}


@dataclass(frozen=True)
class SilverResult:
    """What one run did to one silver table (summed over its micro-batches).

    ``rows_in == rows_out + rows_quarantined + rows_deduplicated`` holds for every batch.
    """

    table: str
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    rows_deduplicated: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    batches: int = 0


def dedupe(df: DataFrame, key: str, newest_by: str | None = None) -> DataFrame:
    """One row per ``key``: the newest by ``newest_by``, else the first ingested.

    Ties are broken by ingest time and source file so a rerun picks the same row.
    """
    if newest_by:
        order = [F.col(newest_by).desc(), F.col("_ingested_at").desc(), F.col("_source_file").desc()]
    else:
        order = [F.col("_ingested_at").asc(), F.col("_source_file").asc(), F.col("_batch_id").asc()]
    w = Window.partitionBy(key).orderBy(*order)
    return df.withColumn("_rank", F.row_number().over(w)).where(F.col("_rank") == 1).drop("_rank")


def quarantine_app_id(spec: SilverTable) -> str:
    """The ``txnAppId`` of a silver stream's quarantine writer."""
    return f"cdplake.silver.{spec.name}.quarantine"


def build_silver_table(
    spark: SparkSession,
    env: EnvConfig,
    table: str,
    run_id: str,
    trigger: str = AVAILABLE_NOW,
    *,
    clock: Clock | None = None,
) -> SilverResult:
    """Bring one silver table up to date with its bronze table.

    Args:
        spark: the session.
        env: the environment (paths, default phone region).
        table: a silver table name (``events``, ``email_events``, ``crm_contacts``, ``orders``).
        run_id: named in reconciliation errors.
        trigger: ``"availableNow"`` or a processing-time interval (see
            :func:`cdplake.io.delta.run_stream`).
        clock: gives ``_quarantined_at`` per micro-batch; Spark's current timestamp by default.

    Returns:
        Row counts of this run.

    Raises:
        pyspark.errors.StreamingQueryException: a batch failed (e.g. it did not reconcile).
    """
    spec = SILVER_TABLES[table]
    bronze_path = env.paths.table("bronze", spec.source)
    if not table_exists(spark, bronze_path):
        return SilverResult(table)
    silver_path = env.paths.table("silver", spec.name)
    quarantine_path = env.paths.table("quarantine", spec.source)
    region = env.pipeline.default_phone_region
    totals = dict.fromkeys(
        (
            "rows_in",
            "rows_out",
            "rows_quarantined",
            "rows_deduplicated",
            "rows_inserted",
            "rows_updated",
            "batches",
        ),
        0,
    )

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        batch = batch.persist()
        checked = None
        try:
            rows_in = batch.count()
            if rows_in == 0:
                return
            checked = spec.check(batch, region).persist()
            ok = F.size(REASONS) == 0
            stats = checked.agg(
                F.count_if(ok).alias("good"),
                F.count_if(~ok).alias("quarantined"),
                F.count_distinct(F.when(ok, F.col(spec.key))).alias("keys"),
            ).first()
            good, quarantined, keys = int(stats["good"]), int(stats["quarantined"]), int(stats["keys"])
            batch_name = f"{run_id}:{batch_id}"
            # Before writing anything: conform must account for every row it read.
            reconcile(BatchCounts(spec.name, batch_name, rows_in, keys, quarantined, good - keys))
            silver, quarantine = split_checked(checked, spec.columns, clock() if clock else None)
            update = (
                None
                if spec.newest_by is None
                else f"{SOURCE}.`{spec.newest_by}` > {TARGET}.`{spec.newest_by}`"
            )
            merged = merge_into(
                dedupe(silver, spec.key, spec.newest_by),
                silver_path,
                [spec.key],
                update_condition=update,
                insert_only=spec.newest_by is None,
            )
            # After the MERGE: keys not written were already stored (or superseded by a newer
            # version). Writing more rows than keys would mean a key matched several rows.
            if merged.written > keys:
                raise ReconciliationError(
                    f"{spec.name} batch {batch_name}: MERGE wrote {merged.written} rows for {keys} keys"
                )
            counts = reconcile(
                BatchCounts(
                    spec.name, batch_name, rows_in, merged.written, quarantined, good - merged.written
                )
            )
            if counts.rows_quarantined:
                append(quarantine, quarantine_path, app_id=quarantine_app_id(spec), version=batch_id)
            else:
                # An empty quarantine is still a table: consumers and checks can read it.
                create_if_absent(quarantine, quarantine_path)
            for name in ("rows_in", "rows_out", "rows_quarantined", "rows_deduplicated"):
                totals[name] += getattr(counts, name)
            totals["rows_inserted"] += merged.inserted
            totals["rows_updated"] += merged.updated
            totals["batches"] += 1
        finally:
            if checked is not None:
                checked.unpersist()
            batch.unpersist()

    run_stream(
        read_stream(spark, bronze_path),
        checkpoint=env.paths.checkpoint(f"silver_{spec.name}"),
        foreach_batch=write_batch,
        trigger=trigger,
        query_name=f"silver_{spec.name}",
    )
    return SilverResult(table, **totals)


def build_silver(
    spark: SparkSession,
    env: EnvConfig,
    run_id: str,
    trigger: str = AVAILABLE_NOW,
    *,
    clock: Clock | None = None,
) -> dict[str, SilverResult]:
    """Bring every silver table up to date with bronze, one after another.

    Args:
        spark: the session.
        env: the environment.
        run_id: named in reconciliation errors.
        trigger: ``"availableNow"`` or a processing-time interval.
        clock: gives ``_quarantined_at``; Spark's current timestamp by default.

    Returns:
        The result per silver table, keyed by table name.
    """
    return {
        name: build_silver_table(spark, env, name, run_id, trigger, clock=clock) for name in SILVER_TABLES
    }
