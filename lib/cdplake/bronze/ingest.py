"""Landing → bronze: a Structured Streaming file source per source, appended to Delta.

Each source is one streaming query with its own checkpoint
(``_checkpoints/bronze_<source>``). With the default ``availableNow`` trigger a run picks up
every file that landed since the last run, in one or more micro-batches, and stops; a run with
no new files does nothing. Each micro-batch is appended with ``txnAppId``/``txnVersion`` so a
batch replayed after a crash between the Delta commit and the checkpoint commit is skipped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from cdplake.bronze.sources import CORRUPT_RECORD, SOURCES, SourceSpec, crm_schema_ddl
from cdplake.io.delta import AVAILABLE_NOW, append, path_exists, run_stream

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cdplake.config import EnvConfig

Clock = Callable[[], dt.datetime]


@dataclass(frozen=True)
class IngestResult:
    """What one run of one source's ingest appended to bronze.

    Attributes:
        source: the source name.
        rows: rows appended in this run.
        files: distinct landing files those rows came from.
        batches: micro-batches committed (replayed batches Delta skipped are not counted).
    """

    source: str
    rows: int = 0
    files: int = 0
    batches: int = 0


def writer_app_id(source: str) -> str:
    """The ``txnAppId`` of a source's bronze writer (one per stream and sink)."""
    return f"cdplake.bronze.{source}"


def read_landing(
    spark: SparkSession, path: str, spec: SourceSpec, *, max_files_per_trigger: int | None = None
) -> DataFrame:
    """A streaming read of one source's landing folder (all date sub-folders).

    Returns the data columns plus ``_source_file`` from the file source's hidden
    ``_metadata`` column (it must be selected here: ``foreachBatch`` cannot see it).
    """
    reader = (
        spark.readStream.format(spec.format)
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", spec.glob)
    )
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
    if spec.format == "csv":
        reader = (
            reader.schema(crm_schema_ddl())
            .option("header", "true")
            .option("multiLine", "true")
            .option("escape", '"')
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
            # A header that does not match the contract fails the query loudly instead of
            # silently shifting columns (e.g. emails landing in the phone column).
            .option("enforceSchema", "false")
        )
    return reader.load(path).select(*spec.data_columns, F.col("_metadata.file_path").alias("_source_file"))


def with_lineage(df: DataFrame, *, batch_id: str, ingested_at: Column) -> DataFrame:
    """Add ``_ingested_at`` and ``_batch_id`` after the data and ``_source_file`` columns."""
    return df.select(
        *[c for c in df.columns if c != "_source_file"],
        "_source_file",
        ingested_at.cast("timestamp").alias("_ingested_at"),
        F.lit(batch_id).alias("_batch_id"),
    )


def ingest_source(
    spark: SparkSession,
    env: EnvConfig,
    source: str,
    run_id: str,
    trigger: str = AVAILABLE_NOW,
    *,
    clock: Clock | None = None,
    max_files_per_trigger: int | None = None,
) -> IngestResult:
    """Append the files newly landed for one source to ``bronze/<source>``.

    Args:
        spark: the session.
        env: the environment (paths from ``env.paths``).
        source: one of ``events``, ``email``, ``orders``, ``crm``.
        run_id: stamped into ``_batch_id`` as ``"<run_id>:<micro-batch id>"``.
        trigger: ``"availableNow"`` (wait until all available files are in) or a
            processing-time interval, in which case the query keeps running and the result
            only covers batches finished before this call returns.
        clock: gives ``_ingested_at`` per micro-batch (tests fix it); Spark's current
            timestamp by default.
        max_files_per_trigger: caps the files per micro-batch (none by default).

    Returns:
        Rows, files and micro-batches this run appended.

    Raises:
        KeyError: unknown source.
    """
    spec = SOURCES[source]
    landing = env.paths.landing(source)
    if not path_exists(spark, landing):
        # The file source refuses a missing folder; nothing has landed yet, nothing to do.
        return IngestResult(source)
    target = env.paths.table("bronze", source)
    totals = {"rows": 0, "files": 0, "batches": 0}

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        ingested_at = F.lit(clock()) if clock else F.current_timestamp()
        out = with_lineage(batch, batch_id=f"{run_id}:{batch_id}", ingested_at=ingested_at).persist()
        try:
            stats = out.agg(
                F.count(F.lit(1)).alias("rows"), F.count_distinct("_source_file").alias("files")
            ).first()
            if append(out, target, app_id=writer_app_id(source), version=batch_id):
                totals["rows"] += int(stats["rows"])
                totals["files"] += int(stats["files"])
                totals["batches"] += 1
        finally:
            out.unpersist()

    run_stream(
        read_landing(spark, landing, spec, max_files_per_trigger=max_files_per_trigger),
        checkpoint=env.paths.checkpoint(f"bronze_{source}"),
        foreach_batch=write_batch,
        trigger=trigger,
        query_name=f"bronze_{source}",
    )
    return IngestResult(source, **totals)


def ingest_all(
    spark: SparkSession,
    env: EnvConfig,
    run_id: str,
    trigger: str = AVAILABLE_NOW,
    *,
    clock: Clock | None = None,
) -> dict[str, IngestResult]:
    """Run :func:`ingest_source` for every source of the landing contract, one after another.

    Returns:
        The result per source, keyed by source name.
    """
    return {name: ingest_source(spark, env, name, run_id, trigger, clock=clock) for name in SOURCES}
