"""``link_records``: probabilistic matching of any table of person records.

Point it at a CSV, Parquet or Delta table and a linkage settings file (the same format as
``conf/linkage.yaml``); it trains a model on that table (or applies a saved one), refuses to
run over the candidate-pair budget, and writes scored pairs, clusters and the model.

Run again with ``incremental=True`` on the grown table (Delta output), it scores only the
records that are new or changed since the last run, against the others and among themselves,
and MERGEs their pairs and the clusters they can change (:mod:`cdplake.identity.cluster_update`)
into the output: the same pairs and clusters a full run with the same model would write.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame, Observation
from pyspark.sql import functions as F

from cdplake.config.linkage import LinkageConfig
from cdplake.identity.cluster_update import update_clusters
from cdplake.identity.incremental import pairs_touching
from cdplake.identity.linkage_settings import UNIQUE_ID
from cdplake.identity.probabilistic import (
    LinkageModel,
    _read_text,
    _write_text,
    clusters,
    fingerprint,
    new_model_version,
    score,
    score_incremental,
    train_model,
)
from cdplake.io.delta import delete_path, path_exists, replace_rows

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INPUT_FORMATS = ("csv", "parquet", "delta")
OUTPUT_FORMATS = ("delta", "parquet", "csv")


def input_format(path: str, fmt: str | None = None) -> str:
    """The format to read ``path`` with: ``fmt`` if given, else guessed from the path.

    A folder holding ``_delta_log`` is Delta; ``.csv`` / ``.parquet`` by extension.

    Raises:
        ValueError: the format is unknown or cannot be guessed.
    """
    if fmt:
        if fmt not in INPUT_FORMATS:
            raise ValueError(f"input format must be one of {INPUT_FORMATS}, got {fmt!r}")
        return fmt
    local = Path(path)
    if (local / "_delta_log").is_dir():
        return "delta"
    for candidate in ("csv", "parquet"):
        if path.rstrip("/").lower().endswith("." + candidate):
            return candidate
    raise ValueError(f"cannot tell the format of {path!r}: pass --format ({', '.join(INPUT_FORMATS)})")


def read_records(spark: SparkSession, path: str, fmt: str | None = None) -> DataFrame:
    """Read the input table (CSV with a header row; every column as a string)."""
    kind = input_format(path, fmt)
    if kind == "csv":
        return spark.read.option("header", True).option("inferSchema", False).csv(path)
    return spark.read.format(kind).load(path)


def prepare_records(df: DataFrame, cfg: LinkageConfig, id_column: str, source: str) -> DataFrame:
    """The columns Splink needs: ``unique_id``, ``source``, ``record_key`` and the compared fields.

    Compared fields are cast to trimmed strings with blanks as null (a blank is missing, not
    a value two records can share). :func:`count_checked` checks the ids.

    Raises:
        ValueError: the id column or a compared column is missing.
    """
    missing = [c for c in (id_column, *cfg.columns) if c not in df.columns]
    if missing:
        raise ValueError(
            f"input lacks column(s) {missing}; the settings compare {list(cfg.columns)} and the id "
            f"column is {id_column!r}; the input has {df.columns}"
        )
    key = F.col(id_column).cast("string")
    fields = []
    for c in cfg.columns:
        trimmed = F.trim(F.col(c).cast("string"))
        fields.append(F.when(trimmed != "", trimmed).alias(c))
    return df.select(
        F.concat_ws(":", F.lit(source), key).alias(UNIQUE_ID),
        F.lit(source).alias("source"),
        key.alias("record_key"),
        *fields,
    )


def count_checked(records: DataFrame, id_column: str) -> int:
    """The number of prepared records, in the same job that checks their ids.

    Raises:
        ValueError: a null or repeated id.
    """
    problems = records.agg(
        F.count("*").alias("n"),
        F.count(F.when(F.col("record_key").isNull(), 1)).alias("null_ids"),
        (F.count("record_key") - F.countDistinct("record_key")).alias("repeated"),
    ).first()
    _refuse_bad_ids(id_column, problems["null_ids"], problems["repeated"])
    return problems["n"]


def _refuse_bad_ids(id_column: str, null_ids: int, repeated: int) -> None:
    if null_ids or repeated:
        raise ValueError(
            f"id column {id_column!r} must be unique and non-null: {null_ids} null, {repeated} repeated"
        )


@dataclass(frozen=True)
class LinkResult:
    """What one ``link_records`` run did.

    Attributes:
        records: input records.
        candidate_pairs: pairs the blocking rules gave (full runs; 0 when incremental).
        pairs_written, links, clusters: what the output holds after the run.
        model_version: the model scored with.
        output: the output folder.
        mode: ``full`` or ``incremental``.
        reason: why a run asked to be incremental ran in full (empty otherwise).
        batch_records: records new or changed since the last run (incremental runs).
        scope_records: records whose cluster was recomputed (incremental runs).
    """

    records: int
    candidate_pairs: int
    pairs_written: int
    links: int
    clusters: int
    model_version: str
    output: str
    mode: str = "full"
    reason: str = ""
    batch_records: int = 0
    scope_records: int = 0


# What an incremental run compares with: one row per input record as last scored.
FINGERPRINTS = "records"
# Written before an incremental run changes a table, removed after its last commit: a run
# that finds it knows the one before stopped half way.
PENDING = "_incremental_pending.json"
# Written after a run's last commit (Delta output), removed before a full run writes: the model
# the tables were scored with and the counts they hold. An incremental run goes on from it.
LAST_RUN = "_last_run.json"
# A batch of at most this many records is broadcast to every task that joins it.
BROADCAST_BATCH_MAX = 1_000_000
PAIR_KEY = ["source_l", "record_key_l", "source_r", "record_key_r"]


def fingerprints(records: DataFrame, cfg: LinkageConfig, model_version: str) -> DataFrame:
    """``record_key, fingerprint, model_version``: SHA-256 of each record's compared columns."""
    return records.select(
        "record_key",
        fingerprint(cfg.columns).alias("fingerprint"),
        F.lit(model_version).alias("model_version"),
    )


def _write(df: DataFrame, path: str, fmt: str) -> None:
    writer = df.write.mode("overwrite")
    if fmt == "csv":
        writer.option("header", True).csv(path)
    else:
        writer.format(fmt).save(path)


def link_records(
    spark: SparkSession,
    input_path: str,
    cfg: LinkageConfig,
    output: str,
    *,
    id_column: str,
    input_fmt: str | None = None,
    output_fmt: str = "delta",
    model_path: str | None = None,
    run_id: str = "link_records",
    incremental: bool = False,
    checkpoint_dir: str | None = None,
) -> LinkResult:
    """Train (or load) a model, score the input's candidate pairs and cluster them.

    Writes ``<output>/pairs`` (``source_l, record_key_l, source_r, record_key_r,
    match_weight, match_probability, model_version, run_id``; pairs below
    ``min_match_probability_written`` are left out), ``<output>/clusters`` (``record_key,
    cluster_id, component_id``, every input record; ``component_id`` is the connected
    component the over-merge guard split the cluster from, else the cluster itself),
    ``<output>/model.json`` and, for Delta output, ``<output>/records`` (a fingerprint of
    each record's compared columns) and ``<output>/_last_run.json`` (:data:`LAST_RUN`).

    An incremental run (Delta output only) applies the model of the last run (or
    ``model_path`` when its version is the same) to the records new or changed since then and
    MERGEs; it runs in full when the output lacks the last run's state (none, or a full run
    stopped half way) or the model version differs.

    Args:
        spark: the session.
        input_path: a CSV file/folder, Parquet or Delta table.
        cfg: linkage settings (its columns must exist in the input).
        output: folder for the results.
        id_column: the input's unique record id.
        input_fmt: ``csv``, ``parquet`` or ``delta``; guessed from the path when omitted.
        output_fmt: ``delta``, ``parquet`` or ``csv``.
        model_path: a saved model JSON to apply instead of training one; its file name
            (without ``.json``) is the model version stamped on the pairs.
        run_id: stamped on every pair.
        incremental: score and cluster only what changed since the last run into ``output``.
        checkpoint_dir: where Splink writes its intermediate tables as Parquet, which keeps
            the plans of its clustering loop short (kept in memory instead, 10k records
            exhausted a 2 GB driver). None: the session's checkpoint directory if it has one,
            else in memory. The first directory given to a session is the one it keeps.

    Raises:
        CandidatePairBudgetExceeded: the blocking rules would give more pairs than the budget.
        ValueError: bad input columns, ids or formats.
    """
    if output_fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output format must be one of {OUTPUT_FORMATS}, got {output_fmt!r}")
    if incremental and output_fmt != "delta":
        raise ValueError(
            f"an incremental run MERGEs into Delta tables: output format must be delta, got {output_fmt!r}"
        )
    source = Path(input_path.rstrip("/")).stem or "input"
    records = prepare_records(read_records(spark, input_path, input_fmt), cfg, id_column, source).cache()
    model = _saved_model(spark, model_path) if model_path else None
    tmp = checkpoint_dir or spark.sparkContext.getCheckpointDir()
    mode, reason, batch, scope, candidates = "full", "", 0, 0, 0
    previous, last, counts = None, None, None
    if incremental:
        previous, last, reason = _previous_run(spark, output, model)
    try:
        if previous is not None and last is not None:  # checks the ids in the job that finds the batch
            model = previous
            mode = "incremental"
            n_records, batch, scope, counts = _link_batch(
                spark, records, source, model, cfg, output, run_id, tmp, id_column, last
            )
        else:
            n_records = count_checked(records, id_column)
    except BaseException:
        records.unpersist()
        raise
    if mode == "full":
        for stale in (LAST_RUN, PENDING):  # the tables are about to change under them
            delete_path(spark, f"{output}/{stale}")
        if model is None:
            model = train_model(spark, records, cfg, new_model_version(), checkpoint_dir=tmp)
        scored = score(spark, records, model, cfg, run_id, checkpoint_dir=tmp)
        _write(scored.edges, f"{output}/pairs", output_fmt)
        clustered = clusters(
            scored,
            cfg.threshold_match_probability,
            cfg.max_cluster_size,
            cfg.split_thresholds,
            with_component=True,
        ).select("record_key", "cluster_id", "component_id")
        _write(clustered, f"{output}/clusters", output_fmt)
        _write_text(spark, f"{output}/model.json", json.dumps(dict(model.settings), indent=2, sort_keys=True))
        if output_fmt == "delta":
            _write(fingerprints(records, cfg, model.version), f"{output}/{FINGERPRINTS}", "delta")
        candidates = scored.candidate_pairs

    def written(name: str) -> DataFrame:
        return (
            spark.read.format("csv" if output_fmt == "csv" else output_fmt)
            .option("header", True)
            .load(f"{output}/{name}")
        )

    if counts is None:
        link = F.col("match_probability").cast("double") >= cfg.threshold_match_probability
        row = (  # one job reads both tables
            written("pairs")
            .agg(F.count("*").alias("pairs"), F.count(F.when(link, 1)).alias("links"))
            .crossJoin(written("clusters").agg(F.countDistinct("cluster_id").alias("clusters")))
            .first()
        )
        counts = {k: row[k] for k in ("pairs", "links", "clusters")}
    if output_fmt == "delta":
        state = {"model_version": model.version, "run_id": run_id, **counts}
        _write_text(spark, f"{output}/{LAST_RUN}", json.dumps(state, indent=2, sort_keys=True))
        delete_path(spark, f"{output}/{PENDING}")  # after the last commit and the state
    records.unpersist()
    return LinkResult(
        records=n_records,
        candidate_pairs=candidates,
        pairs_written=counts["pairs"],
        links=counts["links"],
        clusters=counts["clusters"],
        model_version=model.version,
        output=output,
        mode=mode,
        reason=reason,
        batch_records=batch,
        scope_records=scope,
    )


def _saved_model(spark: SparkSession, path: str) -> LinkageModel:
    return LinkageModel(version=Path(path).stem, settings=json.loads(_read_text(spark, path)))


def _previous_run(
    spark: SparkSession, output: str, model: LinkageModel | None
) -> tuple[LinkageModel | None, dict | None, str]:
    """The model and state (:data:`LAST_RUN`) of the last run into ``output`` if an incremental
    run can go on from it, else why not.

    The state is written after a finished run's last commit and removed before a full run
    writes, so without it the tables may not belong together: the run goes in full.
    """
    try:
        last = json.loads(_read_text(spark, f"{output}/{LAST_RUN}"))
    except FileNotFoundError:
        return None, None, "no_previous_run"
    version = last["model_version"]
    if model is not None and model.version != version:
        return None, None, "model_changed"
    if model is None:
        settings = json.loads(_read_text(spark, f"{output}/model.json"))
        model = LinkageModel(version=version, settings=settings)
    return model, last, ""


def _link_batch(
    spark: SparkSession,
    records: DataFrame,
    source: str,
    model: LinkageModel,
    cfg: LinkageConfig,
    output: str,
    run_id: str,
    checkpoint_dir: str | None,
    id_column: str,
    last: dict,
) -> tuple[int, int, int, dict | None]:
    """Score the new and changed records, write their pairs and MERGE the clusters they change.

    When every record of the batch is new (none changed or gone) and the last run finished,
    no stored pair touches the batch: its pairs are appended and its fingerprints too, with
    no lookup in either table. Otherwise the stored pairs and fingerprints of the touched
    records are replaced with MERGEs. The journal file (:data:`PENDING`) marks a run in
    progress; a run that finds it takes the MERGE path, which rewrites whatever pairs the
    stopped run left for the records it scores again. The caller removes the journal once the
    run's state (:data:`LAST_RUN`) is written.

    The job that compares the fingerprints also counts the records and checks their ids
    (as :func:`count_checked` does), before anything is written.

    Returns:
        ``(records, records new or changed, records re-clustered, counts)``; ``counts``
        (``pairs, links, clusters`` the tables hold now) follow from ``last``'s when the run
        appended and clustered on the driver or found nothing to do, else None (count them).

    Raises:
        ValueError: a null or repeated id.
    """
    paths = {name: f"{output}/{name}" for name in ("pairs", "clusters", FINGERPRINTS)}
    journal = f"{output}/{PENDING}"
    recovering = path_exists(spark, journal)
    before = spark.read.format("delta").load(paths[FINGERPRINTS])
    now = fingerprints(records, cfg, model.version)
    # One join finds them all: a record is new (no fingerprint), changed (its fingerprint
    # differs) or gone (no longer in the input). Pinned before the tables change.
    was = before.select("record_key", F.struct("fingerprint", "model_version").alias("_was"))
    # One row per id, so the join reuses the grouping's shuffle; ids are checked on the way.
    ids = Observation("link_records_ids")
    per_id = (
        now.groupBy("record_key")
        .agg(F.count("*").alias("_copies"), F.first(F.struct("fingerprint", "model_version")).alias("_now"))
        .observe(
            ids,
            F.sum("_copies").alias("records"),
            F.sum(F.when(F.col("record_key").isNull(), F.col("_copies"))).alias("null_ids"),
            F.sum(F.when(F.col("record_key").isNotNull(), F.col("_copies") - 1)).alias("repeated"),
        )
    )
    diff = (
        per_id.select("record_key", "_now")
        .join(was, "record_key", "full_outer")
        .where(~F.col("_now").eqNullSafe(F.col("_was")))
        .select(
            "record_key", F.col("_now").isNotNull().alias("_present"), F.col("_was").isNotNull().alias("_had")
        )
        .localCheckpoint(eager=True)
    )
    checked = ids.get
    _refuse_bad_ids(id_column, checked["null_ids"] or 0, checked["repeated"] or 0)
    n_records = checked["records"] or 0
    sizes = diff.agg(
        F.count("*").alias("touched"),
        F.count(F.when(F.col("_present"), 1)).alias("present"),
        F.count(F.when(F.col("_had"), 1)).alias("had"),
    ).first()
    if not sizes["touched"]:  # a stopped run had made its last commit: count what it left
        return n_records, 0, 0, None if recovering else {k: last[k] for k in ("pairs", "links", "clusters")}
    appending = not recovering and not sizes["had"]
    changed = diff.where("_present").select("record_key")
    touched = diff.select(F.lit(source).alias("source"), "record_key")
    n_new = sizes["present"]
    old_pairs = spark.read.format("delta").load(paths["pairs"])
    if n_new:
        # Spark cannot size a checkpoint, so it would shuffle every record to join a batch.
        by_key = F.broadcast(changed) if n_new <= BROADCAST_BATCH_MAX else changed
        new = records.join(by_key, "record_key", "left_semi").localCheckpoint(eager=True)
        existing = records.join(by_key, "record_key", "left_anti")
        edges = score_incremental(
            spark, existing, new, model, cfg, run_id, checkpoint_dir=checkpoint_dir
        ).localCheckpoint(eager=True)
    else:  # records only vanished
        new = records.limit(0)
        edges = spark.createDataFrame([], old_pairs.schema)
    _write_text(spark, journal, json.dumps({"run_id": run_id, "batch_records": sizes["touched"]}))
    if appending:
        edges.select(*old_pairs.columns).write.format("delta").mode("append").save(paths["pairs"])
    else:
        replace_rows(
            edges.select(*old_pairs.columns), pairs_touching(old_pairs, touched), paths["pairs"], PAIR_KEY
        )
    update = update_clusters(
        spark.read.format("delta")
        .load(paths["clusters"])
        .select(F.lit(source).alias("source"), "record_key", "cluster_id", "component_id"),
        records.select("source", "record_key"),
        spark.read.format("delta").load(paths["pairs"]),
        touched,
        cfg.threshold_match_probability,
        max_cluster_size=cfg.max_cluster_size,
        split_thresholds=cfg.split_thresholds,
        driver_max_records=cfg.incremental.cluster_driver_max,
        touched_links=edges,  # after the write, the pairs with an end in ``touched`` are these
        only_new=appending,
    )
    rows = update.clusters.select("record_key", "cluster_id", "component_id")
    scope = update.scope.select("record_key")
    if update.scope_size is None:  # clustered on Spark: pin the rows, count them
        rows, scope = rows.localCheckpoint(eager=True), scope.localCheckpoint(eager=True)
        n_scope = scope.count()
    else:  # clustered on the driver: local rows, at most ``cluster_driver_max``
        n_scope = update.scope_size
    # With only new records, every record of the scope has a row in ``rows``: nothing goes.
    replace_rows(
        rows,
        None if appending else scope,
        paths["clusters"],
        ["record_key"],
        broadcast=update.engine == "driver",
    )
    new_prints = fingerprints(new, cfg, model.version)  # the batch's own, not every record's
    if appending:
        new_prints.write.format("delta").mode("append").save(paths[FINGERPRINTS])
    else:
        replace_rows(
            new_prints,
            before.join(touched.select("record_key"), "record_key", "left_semi"),
            paths[FINGERPRINTS],
            ["record_key"],
        )
    counts = None
    if appending and update.clusters_added is not None:
        link = F.col("match_probability") >= cfg.threshold_match_probability
        added = edges.agg(F.count("*").alias("pairs"), F.count(F.when(link, 1)).alias("links")).first()
        counts = {
            "pairs": last["pairs"] + added["pairs"],
            "links": last["links"] + added["links"],
            "clusters": last["clusters"] + update.clusters_added,
        }
    return n_records, n_new, n_scope, counts
