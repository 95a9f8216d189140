"""Bronze → silver: a Delta stream per bronze table, conformed, checked, deduplicated and merged.

Per micro-batch and table: conform (split into good rows and quarantine), apply the table's
row rules from ``conf/quality/<table>.yaml`` to the good rows (a ``quarantine`` rule adds
the reason ``rule:<id>``, a ``warn`` rule is counted, a ``fail`` rule stops the batch before
anything is written), keep one row per key, MERGE into the silver table (and, for contacts,
into the SCD2 history), reconcile the counts, then append the quarantined rows. Every write
is idempotent on replay: the MERGEs carry Delta transaction ids (``txnAppId`` = the table's
writer, ``txnVersion`` = the batch id) and their conditions only insert absent keys (or,
for contacts, only apply a strictly newer ``updated_at``); the quarantine append carries
``txnAppId``/``txnVersion`` too. Silver rows keep the lineage of their bronze row.

Out-of-order events: a table with ``event_time`` in its quality file has an event-time
watermark, the newest event time stored by earlier batches minus the allowed lateness (as
Spark's ``withWatermark``, but without dropping anything). A row older than the watermark is
still merged (deduplication is by key, so arrival order never changes what silver holds),
counted in ``rows_late`` and logged in ``quality/late_arrivals`` with the watermark it
missed: windowed real-time signals, which do drop late rows, have already closed its window.
The watermark ignores the rows of the batch's own bronze batches, so a replayed batch is
judged against the same watermark.

After an ``availableNow`` run that wrote a batch, each table's Great Expectations suite runs
once over the whole table and its results go to ``quality/dq_results``
(:mod:`cdplake.quality.dataset`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, Window
from pyspark.sql import functions as F

from cdplake.io.concurrent import run_side_by_side
from cdplake.io.delta import (
    AVAILABLE_NOW,
    SOURCE,
    TARGET,
    append,
    create_if_absent,
    merge_into,
    read_stream,
    read_table,
    run_stream,
    stats_on,
    table_exists,
)
from cdplake.io.frames import materialize, release
from cdplake.quality import BatchCounts, ReconciliationError, reconcile
from cdplake.quality.rules import (
    RuleCounts,
    check_fail_rules,
    counts_from_row,
    flag_rules,
    rule_count_columns,
    rule_reasons,
)
from cdplake.silver import crm, email, events, orders
from cdplake.silver._common import REASONS, records_of_quarantined_rows, split_checked
from cdplake.silver.history import VALID_FROM, merge_history

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdplake.config import EnvConfig
    from cdplake.config.quality import EventTime, TableQuality
    from cdplake.quality.dataset import DatasetCheck

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
        history: when set (needs ``newest_by``), every version is also kept in this SCD2
            table (:mod:`cdplake.silver.history`).
        time: the row's time column: with the key and ``_batch_id``, the columns Delta keeps
            file statistics on (:func:`cdplake.io.delta.stats_on`).
    """

    source: str
    name: str
    key: str
    columns: tuple[str, ...]
    check: Callable[[DataFrame, str], DataFrame]
    newest_by: str | None = None
    history: str | None = None
    time: str | None = None

    @property
    def stats_columns(self) -> tuple[str, ...]:
        """The silver table's columns with Delta file statistics."""
        return (self.key, *([self.time] if self.time else []), "_batch_id")


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
            time="event_ts",
        ),
        SilverTable("email", "email_events", email.KEY, email.SILVER_COLUMNS, _check_email, time="event_ts"),
        SilverTable(
            "crm",
            "crm_contacts",
            crm.KEY,
            crm.SILVER_COLUMNS,
            lambda df, r: crm.check_crm(df, default_region=r),
            crm.ORDER_BY,
            history="crm_contacts_history",
            time=crm.ORDER_BY,
        ),
        SilverTable(
            "orders",
            "orders",
            orders.KEY,
            orders.SILVER_COLUMNS,
            lambda df, r: orders.check_orders(df, default_region=r),
            time="order_ts",
        ),
    )
}


@dataclass(frozen=True)
class SilverResult:
    """What one run did to one silver table (summed over its micro-batches).

    ``rows_in == rows_out + rows_quarantined + rows_deduplicated`` holds for every batch
    (``rows_quarantined`` includes rows a ``quarantine`` rule split off).

    Attributes:
        rule_failures: ``(rule id, action, rows failing)`` of each rule some row failed,
            in rule order (warnings included; a ``fail`` rule here means the run failed).
        history_inserted: versions added to the SCD2 history (contacts only).
        history_restated: stored versions whose interval a late version changed.
        checks: the dataset checks run after the stream (the table, then its history).
        rows_late: accepted rows older than the event-time watermark when they arrived.
    """

    table: str
    rows_in: int = 0
    rows_out: int = 0
    rows_quarantined: int = 0
    rows_deduplicated: int = 0
    rows_inserted: int = 0
    rows_updated: int = 0
    batches: int = 0
    rule_failures: tuple[tuple[str, str, int], ...] = ()
    history_inserted: int = 0
    history_restated: int = 0
    checks: tuple[DatasetCheck, ...] = ()
    rows_late: int = 0


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


#: Quarantined rows are found by batch and time; their raw records need no file statistics.
QUARANTINE_STATS = stats_on("_batch_id", "_quarantined_at")

LATE_ARRIVALS = "late_arrivals"
LATE_ARRIVALS_SCHEMA = (
    "table STRING, key STRING, event_time TIMESTAMP, watermark TIMESTAMP, "
    "_source_file STRING, _batch_id STRING, run_id STRING"
)


def event_watermark(stored: DataFrame, batch: DataFrame, event_time: EventTime) -> dt.datetime | None:
    """The newest ``event_time.column`` stored by earlier batches minus the allowed lateness.

    Rows of the bronze batches in ``batch`` are left out, so the value does not change when
    the batch is replayed after its MERGE committed. None when nothing earlier is stored.
    """
    earlier = stored.join(batch.select("_batch_id").distinct(), "_batch_id", "left_anti")
    newest = earlier.agg(F.max(event_time.column)).first()[0]
    if newest is None:
        return None
    return newest - dt.timedelta(seconds=event_time.allowed_lateness_seconds)


def late_rows(
    accepted: DataFrame, table: str, key: str, event_time: EventTime, watermark: dt.datetime, run_id: str
) -> DataFrame:
    """Rows of ``accepted`` whose event time is older than ``watermark``, as late-arrival log rows."""
    ts = F.col(event_time.column)
    return accepted.where(ts < F.lit(watermark)).select(
        F.lit(table).alias("table"),
        F.col(key).cast("string").alias("key"),
        ts.alias("event_time"),
        F.lit(watermark).cast("timestamp").alias("watermark"),
        "_source_file",
        "_batch_id",
        F.lit(run_id).alias("run_id"),
    )


def quarantine_app_id(spec: SilverTable) -> str:
    """The ``txnAppId`` of a silver stream's quarantine writer."""
    return f"cdplake.silver.{spec.name}.quarantine"


def merge_app_id(table: str) -> str:
    """The ``txnAppId`` of the MERGE writer of a silver table (or its history)."""
    return f"cdplake.silver.{table}.merge"


def table_quality(env: EnvConfig, table: str | None) -> TableQuality | None:
    """The table's ``conf/quality/<table>.yaml``, or None when it has none."""
    from cdplake.config.quality import QUALITY_DIR, load_quality_config

    if table is None or not (Path(env.conf_dir) / QUALITY_DIR / f"{table}.yaml").is_file():
        return None
    return load_quality_config(table, env.conf_dir)


def with_rule_reasons(checked: DataFrame, quality: TableQuality | None) -> DataFrame:
    """Apply the row rules to the rows conform accepted; blocking failures become reasons.

    Adds ``failed_rules`` (null on rows conform already rejected) and appends
    ``rule:<id>`` to ``_reasons`` for each failed ``quarantine``/``fail`` rule.
    """
    if quality is None or not quality.rules:
        return checked
    flagged = flag_rules(checked, quality.rules, only_where=F.size(REASONS) == 0)
    return flagged.withColumn(REASONS, F.concat(F.col(REASONS), rule_reasons(quality.rules)))


def build_silver_table(
    spark: SparkSession,
    env: EnvConfig,
    table: str,
    run_id: str,
    trigger: str = AVAILABLE_NOW,
    *,
    clock: Clock | None = None,
    dataset_checks: bool = True,
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
        dataset_checks: run the Great Expectations suite (see the module docstring).

    Returns:
        Row counts, rule failures and dataset checks of this run.

    Raises:
        pyspark.errors.StreamingQueryException: a batch failed (it did not reconcile, or a
            row failed a rule whose action is ``fail``).
    """
    spec = SILVER_TABLES[table]
    bronze_path = env.paths.table("bronze", spec.source)
    if not table_exists(spark, bronze_path):
        return SilverResult(table)
    silver_path = env.paths.table("silver", spec.name)
    quarantine_path = env.paths.table("quarantine", spec.source)
    late_path = env.paths.table("quality", LATE_ARRIVALS)
    history_path = env.paths.table("silver", spec.history) if spec.history else None
    region = env.pipeline.default_phone_region
    quality = table_quality(env, spec.name)
    rules = quality.rules if quality else ()
    rule_totals: list[RuleCounts] = []
    checked_tables = [(spec.name, silver_path, quality)]
    if spec.history:
        checked_tables.append((spec.history, history_path, table_quality(env, spec.history)))
    # Rows before the run, for the row-count expectation after it (answered from Delta's log).
    per_run_checks = dataset_checks and trigger == AVAILABLE_NOW
    rows_before = {}
    if per_run_checks:
        from cdplake.quality.dataset import row_count

        rows_before = {name: row_count(spark, path) for name, path, _ in checked_tables}
    totals = dict.fromkeys(
        (
            "rows_in",
            "rows_out",
            "rows_quarantined",
            "rows_deduplicated",
            "rows_inserted",
            "rows_updated",
            "batches",
            "history_inserted",
            "history_restated",
            "rows_late",
        ),
        0,
    )
    event_time = quality.event_time if quality else None

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        # Counted from bronze, not from the conformed rows, so reconciliation checks conform.
        rows_in = batch.count()
        if rows_in == 0:
            return
        # Conformed once: the stats, the MERGEs, the quarantine and the late log read these rows.
        checked = materialize(
            records_of_quarantined_rows(with_rule_reasons(spec.check(batch, region), quality))
        )
        try:
            ok = F.size(REASONS) == 0
            watermark = None
            if event_time is not None and table_exists(spark, silver_path):
                watermark = event_watermark(read_table(spark, silver_path), checked, event_time)
            late = ok & (F.col(event_time.column) < F.lit(watermark)) if watermark else F.lit(False)
            stats = checked.agg(
                F.count_if(ok).alias("good"),
                F.count_if(~ok).alias("quarantined"),
                F.count_distinct(F.when(ok, F.col(spec.key))).alias("keys"),
                F.count_if(late).alias("late"),
                *(rule_count_columns(rules) if rules else []),
            ).first()
            good, quarantined, keys = int(stats["good"]), int(stats["quarantined"]), int(stats["keys"])
            batch_name = f"{run_id}:{batch_id}"
            if rules:
                rule_counts = counts_from_row(stats, rules)
                # A fail rule stops the batch before any write; the checkpoint is not
                # committed, so the batch is read again once the data or rule is fixed.
                check_fail_rules(rule_counts, f"{spec.name} batch {batch_name}")
                rule_totals.append(rule_counts)
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
                txn=(merge_app_id(spec.name), batch_id),
                properties=stats_on(*spec.stats_columns),
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
            if spec.history:
                hist = merge_history(
                    silver,
                    history_path,
                    spec.key,
                    spec.newest_by,
                    txn=(merge_app_id(spec.history), batch_id),
                    properties=stats_on(spec.key, VALID_FROM, "_batch_id"),
                )
                # Every version not stored before the MERGE must have been inserted by it.
                if hist.inserted != hist.new_versions:
                    raise ReconciliationError(
                        f"{spec.history} batch {batch_name}: MERGE inserted {hist.inserted} "
                        f"of {hist.new_versions} new versions"
                    )
                reconcile(
                    BatchCounts(
                        spec.history, batch_name, rows_in, hist.inserted, quarantined, good - hist.inserted
                    )
                )
                totals["history_inserted"] += hist.inserted
                totals["history_restated"] += hist.restated
            if int(stats["late"]):
                assert event_time is not None and watermark is not None
                log = late_rows(silver, spec.name, spec.key, event_time, watermark, run_id)
                append(log, late_path, app_id=f"cdplake.silver.{spec.name}.late", version=batch_id)
                totals["rows_late"] += int(stats["late"])
            if counts.rows_quarantined:
                append(
                    quarantine,
                    quarantine_path,
                    app_id=quarantine_app_id(spec),
                    version=batch_id,
                    properties=QUARANTINE_STATS,
                )
            else:
                # An empty quarantine is still a table: consumers and checks can read it.
                create_if_absent(quarantine, quarantine_path, properties=QUARANTINE_STATS)
            for name in ("rows_in", "rows_out", "rows_quarantined", "rows_deduplicated"):
                totals[name] += getattr(counts, name)
            totals["rows_inserted"] += merged.inserted
            totals["rows_updated"] += merged.updated
            totals["batches"] += 1
            if dataset_checks and not per_run_checks:
                # A processing-time stream has no end of run: check after each batch instead.
                from cdplake.quality.dataset import check_silver_table

                for name, _, q in checked_tables:
                    if q is not None and q.expectations:
                        check_silver_table(
                            batch.sparkSession,
                            env,
                            name,
                            q.expectations,
                            run_id,
                            txn=(dq_app_id(name), batch_id),
                        )
        finally:
            release(checked)

    run_stream(
        read_stream(spark, bronze_path),
        checkpoint=env.paths.checkpoint(f"silver_{spec.name}"),
        foreach_batch=write_batch,
        trigger=trigger,
        query_name=f"silver_{spec.name}",
    )
    checks = []
    if per_run_checks and totals["batches"]:
        from cdplake.quality.dataset import check_silver_table

        max_rows = max_silver_rows(spark, env, spec)
        inserted = {spec.name: totals["rows_inserted"], spec.history: totals["history_inserted"]}
        for name, _, q in checked_tables:
            if q is not None and q.expectations:
                checks.append(
                    check_silver_table(
                        spark,
                        env,
                        name,
                        q.expectations,
                        run_id,
                        expected_rows=rows_before[name] + inserted[name],
                        max_rows=max_rows,
                    )
                )
    return SilverResult(
        table,
        **totals,
        rule_failures=_rule_failures(rule_totals),
        checks=tuple(checks),
    )


def max_silver_rows(spark: SparkSession, env: EnvConfig, spec: SilverTable) -> int:
    """Bronze rows minus quarantined rows: each bronze row ends in at most one silver row or
    one quarantine row, so no silver table (or its history's current rows) can hold more."""
    from cdplake.quality.dataset import row_count

    bronze = row_count(spark, env.paths.table("bronze", spec.source))
    return bronze - row_count(spark, env.paths.table("quarantine", spec.source))


def check_silver_tables(spark: SparkSession, env: EnvConfig, run_id: str) -> tuple[DatasetCheck, ...]:
    """Run every silver table's Great Expectations suite over the whole table, now.

    For a caller that does not run the silver streams itself (the stream's gold lane, see
    :mod:`cdplake.streaming.realtime_lane`): the suites check tables, not batches, so they
    can run off the path new files take. Each table is bounded by its bronze rows minus its
    quarantined rows; the exact row count a run's MERGEs imply is only known to the run.
    """
    from cdplake.quality.dataset import check_silver_table

    checks = []
    for spec in SILVER_TABLES.values():
        silver_path = env.paths.table("silver", spec.name)
        if not table_exists(spark, silver_path):
            continue
        max_rows = max_silver_rows(spark, env, spec)
        for name in (spec.name, spec.history):
            quality = table_quality(env, name)
            if name and quality is not None and quality.expectations:
                checks.append(
                    check_silver_table(spark, env, name, quality.expectations, run_id, max_rows=max_rows)
                )
    return tuple(checks)


def dq_app_id(table: str) -> str:
    """The ``txnAppId`` of a table's per-batch writer of data-quality results."""
    return f"cdplake.silver.{table}.dq_results"


def _rule_failures(batches: list[RuleCounts]) -> tuple[tuple[str, str, int], ...]:
    if not batches:
        return ()
    total = batches[0]
    for counts in batches[1:]:
        total = total + counts
    return tuple((r.id, r.action, total.failing[r.id]) for r in total.rules if total.failing[r.id])


def build_silver(
    spark: SparkSession,
    env: EnvConfig,
    run_id: str,
    trigger: str = AVAILABLE_NOW,
    *,
    clock: Clock | None = None,
    dataset_checks: bool = True,
    sources: Collection[str] | None = None,
) -> dict[str, SilverResult]:
    """Bring every silver table up to date with bronze.

    ``env.pipeline.source_workers`` tables run side by side (:mod:`cdplake.io.concurrent`):
    each has its own query, checkpoint, silver and quarantine tables; the shared quality
    tables only get appends, and the Great Expectations suites run one at a time.

    Args:
        spark: the session.
        env: the environment.
        run_id: named in reconciliation errors.
        trigger: ``"availableNow"`` or a processing-time interval.
        clock: gives ``_quarantined_at``; Spark's current timestamp by default.
        dataset_checks: run each table's Great Expectations suite after its stream.
        sources: only the tables built from these bronze sources; all when None.

    Returns:
        The result per silver table, keyed by table name.
    """
    tasks = {
        name: partial(
            build_silver_table, spark, env, name, run_id, trigger, clock=clock, dataset_checks=dataset_checks
        )
        for name, spec in SILVER_TABLES.items()
        if sources is None or spec.source in sources
    }
    return run_side_by_side(tasks, env.pipeline.source_workers)
