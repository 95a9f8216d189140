"""Delta read/write/MERGE helpers shared by every layer, symmetric for batch and streaming.

Scheduled micro-batches are streaming queries with an ``availableNow`` trigger and one
checkpoint per sink (:func:`run_stream`); writes inside ``foreachBatch`` are idempotent on
replay: appends carry Delta's ``txnAppId``/``txnVersion`` (:func:`append`) and upserts are
``MERGE`` statements whose conditions make a second application change nothing
(:func:`merge_into`).

Paths may be local folders or ``s3a://`` URIs: nothing here touches the local filesystem
directly; existence checks go through Hadoop's ``FileSystem`` for the path's scheme.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession
    from pyspark.sql.streaming import StreamingQuery

AVAILABLE_NOW = "availableNow"
#: Session settings that make Delta DML (MERGE, UPDATE, DELETE) idempotent per writer.
TXN_APP_ID_CONF = "spark.databricks.delta.write.txnAppId"
TXN_VERSION_CONF = "spark.databricks.delta.write.txnVersion"

#: Aliases of the two sides of :func:`merge_into`, for ``update_condition`` strings.
TARGET = "t"
SOURCE = "s"


@dataclass(frozen=True)
class MergeMetrics:
    """What one MERGE did to the target table."""

    inserted: int = 0
    updated: int = 0

    @property
    def written(self) -> int:
        """Rows inserted or updated."""
        return self.inserted + self.updated


def path_exists(spark: SparkSession, path: str) -> bool:
    """Whether a file or folder exists, on any Hadoop filesystem (local, ``s3a://``...).

    Args:
        spark: the session whose Hadoop configuration resolves the filesystem.
        path: a local path or URI.
    """
    fs, hadoop_path = hadoop_fs(spark, path)
    return bool(fs.exists(hadoop_path))


def delete_path(spark: SparkSession, path: str) -> None:
    """Delete a file or folder (recursively) if it exists, on any Hadoop filesystem."""
    fs, hadoop_path = hadoop_fs(spark, path)
    fs.delete(hadoop_path, True)


def hadoop_fs(spark: SparkSession, path: str) -> tuple[Any, Any]:
    """The Hadoop ``FileSystem`` serving ``path`` (local, ``s3a://``...) and the path as a
    Hadoop ``Path``: one way to reach a file on any lake."""
    hadoop_path = spark.sparkContext._jvm.org.apache.hadoop.fs.Path(path)
    return hadoop_path.getFileSystem(spark.sparkContext._jsc.hadoopConfiguration()), hadoop_path


# Held while a table that does not exist yet is written for the first time (see below).
_CREATING = threading.Lock()


@contextmanager
def table_creation(spark: SparkSession, path: str) -> Iterator[bool]:
    """Yield whether the Delta table at ``path`` is absent, serialising its creation.

    Sources are processed side by side from one driver (:mod:`cdplake.io.concurrent`) and
    some tables are shared (``quality/dq_results``, ``quality/late_arrivals``). Appends to an
    existing table do not conflict, but two threads that both find a table absent would both
    commit its version 0 and one would fail. While the table is absent the block runs under
    a process-wide lock, and the answer is re-read under it.
    """
    if table_exists(spark, path):
        yield False
        return
    with _CREATING:
        yield not table_exists(spark, path)


def table_exists(spark: SparkSession, path: str) -> bool:
    """Whether ``path`` holds a Delta table.

    Args:
        spark: the session.
        path: table location (local path or URI).
    """
    from delta.tables import DeltaTable

    return bool(DeltaTable.isDeltaTable(spark, path))


def read_table(spark: SparkSession, path: str) -> DataFrame:
    """Batch read of the Delta table at ``path``."""
    return spark.read.format("delta").load(path)


def read_stream(spark: SparkSession, path: str, *, max_files_per_trigger: int | None = None) -> DataFrame:
    """Streaming read of the Delta table at ``path`` (each new commit becomes input).

    Commits that delete or rewrite rows are skipped (``skipChangeCommits``): the tables read
    as streams only gain rows, except when a person's rows are erased
    (:mod:`cdplake.privacy.subject`), which must not stop the stream or be replayed.

    Args:
        spark: the session.
        path: table location.
        max_files_per_trigger: caps the files per micro-batch (Delta's default is 1000).
    """
    reader = spark.readStream.format("delta").option("skipChangeCommits", "true")
    if max_files_per_trigger:
        reader = reader.option("maxFilesPerTrigger", max_files_per_trigger)
    return reader.load(path)


def table_version(spark: SparkSession, path: str) -> int:
    """The latest commit version of a Delta table, or -1 when there is no table yet.

    Asked of the table's log directly (a listing of ``_delta_log``, no Spark job): the
    public ``DeltaTable.history(1)`` costs a job and about ten times as long, and this is
    called around every idempotent append.
    """
    return int(_snapshot(spark, path).version())


def _snapshot(spark: SparkSession, path: str) -> Any:
    """The latest snapshot of the Delta table at ``path``, from its log (a JVM object)."""
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    none = jvm.scala.Option.empty()
    log = jvm.org.apache.spark.sql.delta.DeltaLog.forTable(spark._jsparkSession, path)
    return log.update(False, none, none)


def table_properties(spark: SparkSession, path: str) -> dict[str, str]:
    """The table properties of the Delta table at ``path``, from its log (no Spark job)."""
    configuration = _snapshot(spark, path).metadata().configuration()
    jvm = spark.sparkContext._jvm
    assert jvm is not None
    return dict(jvm.scala.jdk.javaapi.CollectionConverters.asJava(configuration))


def ensure_properties(spark: SparkSession, path: str, properties: Mapping[str, str]) -> dict[str, str]:
    """Set those of ``properties`` the existing table at ``path`` lacks or holds otherwise.

    Tables created before a property was chosen get it at their next write (one
    ``ALTER TABLE ... SET TBLPROPERTIES`` commit, then nothing while they match). Their older
    files keep what they were written with; e.g. :func:`stats_on` applies to new files.

    Returns:
        The properties changed, empty when the table already had them.
    """
    current = table_properties(spark, path)
    changed = {k: v for k, v in properties.items() if current.get(k) != v}
    if changed:
        assignments = ", ".join(f"'{_sql_text(k)}' = '{_sql_text(v)}'" for k, v in changed.items())
        target = path.replace("`", "``")
        spark.sql(f"ALTER TABLE delta.`{target}` SET TBLPROPERTIES ({assignments})")
    return changed


def _sql_text(value: str) -> str:
    """``value`` for a single-quoted SQL string literal."""
    return value.replace("\\", "\\\\").replace("'", "\\'")


# The small bookkeeping tables gain a file or two per run or stream cycle (a 10-second
# stream: thousands a day), so they are compacted as they grow: every COMPACT_EVERY commits
# (compact_now_and_then). Not by Delta's auto compaction: it compacts after the first commit
# of every process, and once a compaction has removed more files than the process added, after
# every commit (an OPTIMIZE job and commit each time, about a second on 2 cores; BENCHMARKS.md,
# "Bookkeeping tables"). Tables created with it on get it turned off at their next write.
BOOKKEEPING = {"delta.autoOptimize.autoCompact": "false"}
COMPACT_EVERY = 50
_COMPACTING = threading.Lock()


def compact_now_and_then(spark: SparkSession, path: str, every: int = COMPACT_EVERY) -> bool:
    """Compact the small files of a bookkeeping table when its version is a multiple of ``every``.

    Call it after each write: deciding costs a look at the log (no Spark job). Other commits
    (a property change, the compaction itself) can take a multiple, so the table holds at most
    about ``2 * every`` writes' files. One compaction at a time per process: threads writing to
    a shared table side by side re-read the version under the lock, so only one compacts.

    Returns:
        True when it compacted.
    """
    from delta.tables import DeltaTable

    with _COMPACTING:
        version = table_version(spark, path)
        if version <= 0 or version % every:
            return False
        DeltaTable.forPath(spark, path).optimize().executeCompaction()
        return True


STATS_COLUMNS = "delta.dataSkippingStatsColumns"


def stats_on(*columns: str) -> dict[str, str]:
    """Table properties that keep Delta's per-file statistics to ``columns``.

    Delta computes min, max and null counts at every write for the first 32 columns by
    default. Over raw lines, quarantined records and JSON text they skip no file, and they
    were most of a silver write's time (BENCHMARKS.md, "Landing → silver"). Row counts are
    kept whatever the list, so ``count()`` is still answered from the log. Set when a write
    creates the table, and by the next write of a table created before
    (:func:`ensure_properties`); its older files keep their statistics.

    Args:
        columns: the columns reads filter or join on (keys, event times, lineage).
    """
    if not columns:
        raise ValueError("stats_on needs at least one column")
    return {STATS_COLUMNS: ",".join(f"`{c}`" for c in columns)}


def append(
    df: DataFrame,
    path: str,
    *,
    app_id: str,
    version: int,
    merge_schema: bool = False,
    properties: Mapping[str, str] | None = None,
) -> bool:
    """Append ``df`` to the Delta table at ``path`` at most once per ``(app_id, version)``.

    Delta records the highest ``txnVersion`` committed for each ``txnAppId`` in the table's
    log and skips a write whose version is not newer, so a micro-batch replayed after a crash
    (same batch id) is not appended twice. The table is created on the first write.

    Args:
        df: rows to append (the table schema on first write).
        path: table location.
        app_id: stable id of the writer (one per stream and sink); resetting the stream's
            checkpoint restarts batch ids at 0, so it then needs a new ``app_id``.
        version: monotonically increasing number of this write, e.g. the micro-batch id.
        merge_schema: add columns of ``df`` the table lacks (additive schema evolution).
        properties: ``delta.*`` table properties set when this write creates the table,
            or before it writes to a table that lacks them (e.g. :func:`stats_on`).

    Returns:
        True when a new commit was written, False when Delta skipped a replayed version.
    """
    spark = df.sparkSession
    with table_creation(spark, path) as new:
        if properties and not new:
            ensure_properties(spark, path, properties)
        before = -1 if new else table_version(spark, path)
        writer = (
            df.write.format("delta")
            .mode("append")
            .option("txnAppId", app_id)
            .option("txnVersion", int(version))
            .option("mergeSchema", str(merge_schema).lower())
        )
        if properties and new:
            writer = writer.options(**properties)
        writer.save(path)
    return table_version(spark, path) > before


def append_bookkeeping(
    df: DataFrame, path: str, *, app_id: str | None = None, version: int | None = None
) -> bool:
    """Append to a bookkeeping table, then :func:`compact_now_and_then`.

    The table is created with :data:`BOOKKEEPING`; an existing one gets it (:func:`ensure_properties`).

    Args:
        df: the rows.
        path: the table.
        app_id: with ``version``, the append is idempotent (:func:`append`); without them it
            is a plain append (a run redone after a crash is a run of its own).
        version: see ``app_id``.

    Returns:
        True when a new commit was written.
    """
    spark = df.sparkSession
    if app_id is not None and version is not None:
        written = append(df, path, app_id=app_id, version=version, properties=BOOKKEEPING)
    else:
        with table_creation(spark, path) as new:
            if not new:
                ensure_properties(spark, path, BOOKKEEPING)
            writer = df.write.format("delta").mode("append")
            if new:
                writer = writer.options(**BOOKKEEPING)
            writer.save(path)
        written = True
    compact_now_and_then(spark, path)
    return written


def create_if_absent(
    df: DataFrame, path: str, *, enable_cdf: bool = False, properties: Mapping[str, str] | None = None
) -> None:
    """Create an empty Delta table with ``df``'s schema at ``path`` unless one exists.

    Args:
        df: gives the schema.
        path: table location.
        enable_cdf: turn on the change data feed.
        properties: more ``delta.*`` table properties (e.g. :func:`stats_on`); an existing
            table that lacks them gets them (:func:`ensure_properties`).
    """
    from delta.tables import DeltaTable

    spark = df.sparkSession
    with table_creation(spark, path) as new:
        if not new:
            if properties:
                ensure_properties(spark, path, properties)
            return
        builder = DeltaTable.createIfNotExists(spark).location(path).addColumns(df.schema)
        if enable_cdf:
            builder = builder.property("delta.enableChangeDataFeed", "true")
        for key, value in (properties or {}).items():
            builder = builder.property(key, value)
        builder.execute()


@contextmanager
def dml_txn(spark: SparkSession, txn: tuple[str, int] | None) -> Iterator[None]:
    """Run the Delta DML inside the block at most once per ``(app_id, version)``.

    Delta records the highest version committed for each app id in the table's log (as it
    does for :func:`append`) and skips a MERGE whose version is not newer, so a micro-batch
    replayed after a crash writes nothing. Wrap only the DML itself: any other commit in the
    block (creating the table) would record the version first and the DML would be skipped.
    ``spark`` should be the micro-batch's session (``batch.sparkSession``), which Spark
    clones per streaming query, so concurrent queries do not see each other's settings.

    Args:
        spark: the session the DML runs in.
        txn: ``(app_id, version)``; None runs the block unchanged.
    """
    if txn is None:
        yield
        return
    app_id, version = txn
    spark.conf.set(TXN_APP_ID_CONF, app_id)
    spark.conf.set(TXN_VERSION_CONF, str(int(version)))
    try:
        yield
    finally:
        spark.conf.unset(TXN_APP_ID_CONF)
        spark.conf.unset(TXN_VERSION_CONF)


def merge_into(
    df: DataFrame,
    path: str,
    keys: Sequence[str],
    *,
    update_condition: str | None = None,
    insert_only: bool = False,
    enable_cdf: bool = False,
    txn: tuple[str, int] | None = None,
    properties: Mapping[str, str] | None = None,
) -> MergeMetrics:
    """Upsert ``df`` into the Delta table at ``path`` by ``keys``; create it on first write.

    Rows whose keys are absent are inserted. Matched rows are updated (all columns) when
    ``update_condition`` holds, or always when it is None; with ``insert_only`` matched rows
    are left alone. ``df`` must hold at most one row per key (dedupe first).

    Args:
        df: source rows; their schema creates the table on first write.
        path: table location.
        keys: columns identifying a row.
        update_condition: SQL over the aliases ``t`` (target) and ``s`` (source), e.g.
            ``"s.updated_at > t.updated_at"``.
        insert_only: never update matched rows (insert-if-absent).
        enable_cdf: turn on the change data feed when the table is created.
        txn: ``(app_id, version)`` for :func:`dml_txn`: a replay of the same version is
            skipped and reports nothing written.
        properties: ``delta.*`` table properties, set when the table is created or lacks
            them (see :func:`create_if_absent`).

    Returns:
        Rows inserted and updated, from the MERGE's own metrics.
    """
    from delta.tables import DeltaTable

    if not keys:
        raise ValueError("merge_into needs at least one key column")
    spark = df.sparkSession
    create_if_absent(df, path, enable_cdf=enable_cdf, properties=properties)
    on = " AND ".join(f"{TARGET}.`{k}` = {SOURCE}.`{k}`" for k in keys)
    merge = DeltaTable.forPath(spark, path).alias(TARGET).merge(df.alias(SOURCE), on)
    if not insert_only:
        merge = merge.whenMatchedUpdateAll(condition=update_condition)
    with dml_txn(spark, txn):
        result = merge.whenNotMatchedInsertAll().execute()
    row = result.first() if result is not None else None
    if row is None:
        return MergeMetrics()
    return MergeMetrics(inserted=int(row["num_inserted_rows"]), updated=int(row["num_updated_rows"]))


def replace_rows(
    new: DataFrame, old: DataFrame | None, path: str, keys: Sequence[str], *, broadcast: bool = False
) -> MergeMetrics:
    """Replace the rows ``old`` of the Delta table at ``path`` by ``new``, in one MERGE.

    ``old`` is the part of the table being recomputed (read from the table itself, e.g. every
    row of some customers) and ``new`` what it is now: rows of ``new`` are upserted by
    ``keys``, rows of ``old`` whose key ``new`` lacks are deleted, and the rest of the table is
    left alone. Keys compare null-safe. Applying the same ``new`` twice changes no value.

    Args:
        new: the recomputed rows, the table's columns, at most one row per key.
        old: rows of the table (at least ``keys``) that ``new`` replaces; a key the table
            lacks matches nothing, so the keys of a recomputed scope may stand for its rows.
            None when no row goes (``new`` has every key of the scope): an upsert.
        path: an existing Delta table.
        keys: columns identifying a row.
        broadcast: ``new`` and ``old`` are small: send them to every task that joins them
            with the table (Spark cannot size a checkpointed frame, so it would shuffle the
            table instead).

    Returns:
        Rows inserted and updated (deletes are not counted).
    """
    from delta.tables import DeltaTable
    from pyspark.sql import functions as F

    if not keys:
        raise ValueError("replace_rows needs at least one key column")
    op = "_cdplake_op"
    on = " AND ".join(f"{TARGET}.`{k}` <=> {SOURCE}.`{k}`" for k in keys)
    values = {f"`{c}`": f"{SOURCE}.`{c}`" for c in new.columns}
    target = DeltaTable.forPath(new.sparkSession, path).alias(TARGET)
    if old is None:
        source = F.broadcast(new) if broadcast else new
        merge = target.merge(source.alias(SOURCE), on).whenMatchedUpdate(set=values)
        result = merge.whenNotMatchedInsert(values=values).execute()
    else:
        gone = old.select(*keys).subtract(new.select(*keys)).withColumn(op, F.lit("delete"))
        source = new.withColumn(op, F.lit("upsert")).unionByName(gone, allowMissingColumns=True)
        if broadcast:
            source = F.broadcast(source)
        result = (
            target.merge(source.alias(SOURCE), on)
            .whenMatchedDelete(condition=f"{SOURCE}.{op} = 'delete'")
            .whenMatchedUpdate(condition=f"{SOURCE}.{op} = 'upsert'", set=values)
            .whenNotMatchedInsert(condition=f"{SOURCE}.{op} = 'upsert'", values=values)
            .execute()
        )
    row = result.first() if result is not None else None
    if row is None:
        return MergeMetrics()
    return MergeMetrics(inserted=int(row["num_inserted_rows"]), updated=int(row["num_updated_rows"]))


def run_stream(
    stream_df: DataFrame,
    *,
    checkpoint: str,
    foreach_batch: Callable[[DataFrame, int], None],
    trigger: str = AVAILABLE_NOW,
    query_name: str | None = None,
    output_mode: str | None = None,
) -> StreamingQuery:
    """Run a ``foreachBatch`` streaming query with one checkpoint for its sink.

    With ``trigger="availableNow"`` (the scheduled-batch mode) the query processes
    everything available at start, in one or more micro-batches, and this call waits for it
    to finish; a failed batch raises here. Any other value is a processing-time interval
    (``"30 seconds"``) and the running query is returned to the caller to manage.

    Args:
        stream_df: a streaming DataFrame.
        checkpoint: the sink's checkpoint location (never shared between sinks).
        foreach_batch: called with each micro-batch and its id; must be idempotent.
        trigger: ``"availableNow"`` or a processing-time interval.
        query_name: optional name shown in the Spark UI and progress events.
        output_mode: ``"update"`` for an aggregation whose batches carry changed groups
            (Spark's default, append, emits a window only once the watermark closes it).

    Returns:
        The streaming query (terminated for ``availableNow``).
    """
    writer = stream_df.writeStream.foreachBatch(foreach_batch).option("checkpointLocation", checkpoint)
    if query_name:
        writer = writer.queryName(query_name)
    if output_mode:
        writer = writer.outputMode(output_mode)
    if trigger == AVAILABLE_NOW:
        query = writer.trigger(availableNow=True).start()
        query.awaitTermination()
    else:
        query = writer.trigger(processingTime=trigger).start()
    return query
