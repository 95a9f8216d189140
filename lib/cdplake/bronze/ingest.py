"""Landing → bronze: a Structured Streaming file source per source, appended to Delta.

Each source is one streaming query with its own checkpoint
(``_checkpoints/bronze_<source>``). With the default ``availableNow`` trigger a run picks up
every file that landed since the last run, in one or more micro-batches, and stops; a run with
no new files does nothing. Each micro-batch is appended with ``txnAppId``/``txnVersion`` so a
batch replayed after a crash between the Delta commit and the checkpoint commit is skipped.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Collection
from dataclasses import dataclass
from functools import partial
from typing import TYPE_CHECKING, TypeVar

from pyspark.sql import Column
from pyspark.sql import functions as F

from cdplake.bronze import files as landed
from cdplake.bronze.contract import with_contract_checks
from cdplake.bronze.csv_header import WIDE_COLUMNS, FileHeader, by_header, wide_schema_ddl
from cdplake.bronze.sources import (
    CONTRACT_ERRORS,
    CONTRACT_VERSION,
    CORRUPT_RECORD,
    RESCUED_DATA,
    SOURCES,
    SourceSpec,
)
from cdplake.config.contracts import SourceContract, load_contract
from cdplake.io.concurrent import run_side_by_side
from cdplake.io.delta import AVAILABLE_NOW, append, path_exists, run_stream, stats_on

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, DataFrameReader, SparkSession
    from pyspark.sql.streaming import DataStreamReader, StreamingQuery

    from cdplake.config import EnvConfig

Clock = Callable[[], dt.datetime]

#: Bronze is read by lineage (file, batch, ingest time); raw lines need no file statistics.
BRONZE_STATS = stats_on("_source_file", "_ingested_at", "_batch_id")


@dataclass(frozen=True)
class IngestResult:
    """What one run of one source's ingest appended to bronze.

    Attributes:
        source: the source name.
        rows: rows appended in this run.
        files: landing files the run's micro-batches took (each has a row in
            ``bronze/<source>_files``).
        problem_files: of those, files that were empty, corrupt or had a header mismatch.
        batches: micro-batches committed (replayed batches Delta skipped are not counted).
    """

    source: str
    rows: int = 0
    files: int = 0
    problem_files: int = 0
    batches: int = 0


def writer_app_id(source: str) -> str:
    """The ``txnAppId`` of a source's bronze writer (one per stream and sink)."""
    return f"cdplake.bronze.{source}"


def read_landing(
    spark: SparkSession,
    path: str,
    spec: SourceSpec,
    *,
    max_files_per_trigger: int | None = None,
) -> DataFrame:
    """A streaming read of one source's landing folder (all date sub-folders).

    Returns the data columns plus ``_source_file`` from the file source's hidden
    ``_metadata`` column (it must be selected here: ``foreachBatch`` cannot see it).
    ``ignoreCorruptFiles`` keeps a truncated gzip from failing the query; the micro-batch
    records such a file in ``bronze/<source>_files`` (see :mod:`cdplake.bronze.files`).

    Args:
        spark: the session.
        path: the source's landing folder.
        spec: how the source is read.
        max_files_per_trigger: caps the files per micro-batch.
    """
    reader = spark.readStream
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
    return landing_columns(landing_reader(reader, spec).load(path), spec)


R = TypeVar("R", "DataFrameReader", "DataStreamReader")


def landing_reader(reader: R, spec: SourceSpec) -> R:
    """``reader`` (batch or streaming) set up to read a source's landing files as bronze does."""
    reader = (
        reader.format(spec.format)
        .option("recursiveFileLookup", "true")
        .option("pathGlobFilter", spec.glob)
        .option("ignoreCorruptFiles", "true")
    )
    if spec.format == "csv":
        # Positional columns, mapped to the contract by each file's header in the micro-batch
        # (cdplake.bronze.csv_header): exports add, drop and reorder columns.
        reader = (
            reader.schema(wide_schema_ddl())
            .option("header", "false")
            .option("multiLine", "true")
            .option("escape", '"')
            .option("mode", "PERMISSIVE")
            .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
        )
    return reader


def landing_columns(df: DataFrame, spec: SourceSpec) -> DataFrame:
    """The data columns of a :func:`landing_reader` frame plus ``_source_file``."""
    columns = (*WIDE_COLUMNS, CORRUPT_RECORD) if spec.format == "csv" else spec.data_columns
    return df.select(*columns, F.col("_metadata.file_path").alias("_source_file"))


def with_contract(df: DataFrame, contract: SourceContract) -> DataFrame:
    """Add ``_rescued_data``, ``_contract_errors`` (JSON sources) and ``_contract_version``.

    For a JSON-lines source the raw ``value`` is held against the contract (see
    :mod:`cdplake.bronze.contract`); a CSV source already has its contract columns and
    ``_rescued_data`` (see :mod:`cdplake.bronze.csv_header`).
    """
    extra = []
    if contract.format == "jsonl":
        df = with_contract_checks(df, contract)
        extra = [RESCUED_DATA, CONTRACT_ERRORS]
    return df.select(
        *[c for c in df.columns if c not in ("_source_file", *extra)],
        *extra,
        F.lit(contract.version).alias(CONTRACT_VERSION),
        "_source_file",
    )


def with_lineage(df: DataFrame, *, batch_id: str, ingested_at: Column) -> DataFrame:
    """Add ``_ingested_at`` and ``_batch_id`` after the data and ``_source_file`` columns."""
    return df.select(
        *[c for c in df.columns if c != "_source_file"],
        "_source_file",
        ingested_at.cast("timestamp").alias("_ingested_at"),
        F.lit(batch_id).alias("_batch_id"),
    )


def start_ingest(
    spark: SparkSession,
    env: EnvConfig,
    source: str,
    run_id: str,
    trigger: str = AVAILABLE_NOW,
    *,
    clock: Clock | None = None,
    max_files_per_trigger: int | None = None,
    totals: dict[str, int] | None = None,
) -> StreamingQuery | None:
    """Start one source's landing → bronze query; see :func:`ingest_source`.

    With ``availableNow`` the call returns when the query has finished; with a
    processing-time interval (``"30 seconds"``) it returns the running query, which the
    caller stops (``query.stop()``) or waits on. Each micro-batch appends the new rows to
    ``bronze/<source>`` and one row per landing file to ``bronze/<source>_files``, both with
    ``txnAppId``/``txnVersion`` so a replayed batch writes nothing twice.

    Args:
        totals: when given, ``rows``, ``files``, ``problem_files`` and ``batches`` are
            added to it as batches commit.

    Returns:
        The query, or None when nothing has ever landed for the source.
    """
    spec = SOURCES[source]
    contract = load_contract(source, env.conf_dir)
    landing = env.paths.landing(source)
    if not path_exists(spark, landing):
        # The file source refuses a missing folder; nothing has landed yet, nothing to do.
        return None
    target = env.paths.table("bronze", source)
    files_table = env.paths.table("bronze", f"{source}_files")
    checkpoint = env.paths.checkpoint(f"bronze_{source}")
    counts = totals if totals is not None else {}

    def write_batch(batch: DataFrame, batch_id: int) -> None:
        now = clock() if clock else None
        ingested_at = F.lit(now) if now else F.current_timestamp()
        batch_name = f"{run_id}:{batch_id}"
        files = landed.batch_files(spark, checkpoint, batch_id)
        errors = {f.path: landed.read_error(spark, f.path) for f in files}
        headers: dict[str, FileHeader] = {}
        if spec.format == "csv":
            batch, headers = by_header(batch, contract)
        out = with_lineage(with_contract(batch, contract), batch_id=batch_name, ingested_at=ingested_at)
        out = out.persist()
        try:
            rows_per_file = {
                r["_source_file"]: int(r["rows"])
                for r in out.groupBy("_source_file").agg(F.count(F.lit(1)).alias("rows")).collect()
            }
            manifest = []
            for f in files:
                header = headers.get(f.path)
                status, detail = landed.file_status(
                    rows_per_file.get(f.path, 0),
                    errors[f.path],
                    header.drift(contract) if header else None,
                    header_mismatch=bool(header and header.matches_nothing),
                )
                manifest.append(
                    (source, f.path, f.size, f.modified_at, rows_per_file.get(f.path, 0), status, detail)
                )
            listed = {f.path for f in files}
            for path, n in sorted(rows_per_file.items()):
                if path not in listed:  # not expected: the log lists every file it hands out
                    manifest.append((source, path, None, None, n, landed.INGESTED, "not in the source log"))
            manifest_df = spark.createDataFrame(
                [(*m, now, batch_name) for m in manifest], landed.FILES_SCHEMA
            )
            if now is None:
                manifest_df = manifest_df.withColumn("_ingested_at", F.current_timestamp())
            # A contract version that adds CSV columns adds them to the bronze table.
            appended = append(
                out,
                target,
                app_id=writer_app_id(source),
                version=batch_id,
                merge_schema=spec.format == "csv",
                properties=BRONZE_STATS,
            )
            append(manifest_df, files_table, app_id=writer_app_id(source) + ".files", version=batch_id)
            if appended:
                counts["rows"] = counts.get("rows", 0) + sum(rows_per_file.values())
                counts["files"] = counts.get("files", 0) + len(manifest)
                counts["problem_files"] = counts.get("problem_files", 0) + sum(
                    m[5] != landed.INGESTED for m in manifest
                )
                counts["batches"] = counts.get("batches", 0) + 1
        finally:
            out.unpersist()

    return run_stream(
        read_landing(spark, landing, spec, max_files_per_trigger=max_files_per_trigger),
        checkpoint=checkpoint,
        foreach_batch=write_batch,
        trigger=trigger,
        query_name=f"bronze_{source}",
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
        env: the environment (paths from ``env.paths``, contracts from ``env.conf_dir``).
        source: one of ``events``, ``email``, ``orders``, ``crm``.
        run_id: stamped into ``_batch_id`` as ``"<run_id>:<micro-batch id>"``.
        trigger: ``"availableNow"`` (wait until all available files are in) or a
            processing-time interval, in which case the query keeps running and the result
            only covers batches finished before this call returns (use :func:`start_ingest`
            to get the query).
        clock: gives ``_ingested_at`` per micro-batch (tests fix it); Spark's current
            timestamp by default.
        max_files_per_trigger: caps the files per micro-batch (none by default).

    Returns:
        Rows, files and micro-batches this run appended.

    Raises:
        KeyError: unknown source.
    """
    totals: dict[str, int] = {}
    start_ingest(
        spark,
        env,
        source,
        run_id,
        trigger,
        clock=clock,
        max_files_per_trigger=max_files_per_trigger,
        totals=totals,
    )
    return IngestResult(source, **totals)


def ingest_all(
    spark: SparkSession,
    env: EnvConfig,
    run_id: str,
    trigger: str = AVAILABLE_NOW,
    *,
    clock: Clock | None = None,
    sources: Collection[str] | None = None,
) -> dict[str, IngestResult]:
    """Run :func:`ingest_source` for every source of the landing contract.

    ``env.pipeline.source_workers`` sources run side by side (:mod:`cdplake.io.concurrent`);
    each has its own query, checkpoint and tables.

    Args:
        sources: only these sources (names of :data:`SOURCES`); all when None.

    Returns:
        The result per source, keyed by source name.
    """
    names = _known_sources(sources)
    tasks = {name: partial(ingest_source, spark, env, name, run_id, trigger, clock=clock) for name in names}
    return run_side_by_side(tasks, env.pipeline.source_workers)


def _known_sources(sources: Collection[str] | None) -> list[str]:
    if sources is None:
        return list(SOURCES)
    unknown = sorted(set(sources) - set(SOURCES))
    if unknown:
        raise ValueError(f"unknown sources {unknown}; known: {sorted(SOURCES)}")
    return [name for name in SOURCES if name in sources]


def start_all(
    spark: SparkSession, env: EnvConfig, run_id: str, trigger: str, *, clock: Clock | None = None
) -> list[StreamingQuery]:
    """Start every source's query with a processing-time ``trigger`` (continuous ingest).

    Returns:
        The running queries (sources with no landing folder yet are skipped).
    """
    queries = [start_ingest(spark, env, name, run_id, trigger, clock=clock) for name in SOURCES]
    return [q for q in queries if q is not None]
