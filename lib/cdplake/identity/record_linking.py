"""``link_records``: probabilistic matching of any table of person records.

Point it at a CSV, Parquet or Delta table and a linkage settings file (the same format as
``conf/linkage.yaml``); it trains a model on that table (or applies a saved one), refuses to
run over the candidate-pair budget, and writes scored pairs, clusters and the model.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdplake.config.linkage import LinkageConfig
from cdplake.identity.linkage_settings import UNIQUE_ID
from cdplake.identity.probabilistic import (
    LinkageModel,
    _read_text,
    _write_text,
    clusters,
    new_model_version,
    score,
    train_model,
)

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
    a value two records can share).

    Raises:
        ValueError: the id column or a compared column is missing, or ids are not unique.
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
    out = df.select(
        F.concat_ws(":", F.lit(source), key).alias(UNIQUE_ID),
        F.lit(source).alias("source"),
        key.alias("record_key"),
        *fields,
    )
    problems = out.agg(
        F.count(F.when(F.col("record_key").isNull(), 1)).alias("null_ids"),
        (F.count("*") - F.countDistinct("record_key")).alias("repeated"),
    ).first()
    if problems["null_ids"] or problems["repeated"]:
        raise ValueError(
            f"id column {id_column!r} must be unique and non-null: {problems['null_ids']} null, "
            f"{problems['repeated']} repeated"
        )
    return out


@dataclass(frozen=True)
class LinkResult:
    """What one ``link_records`` run did."""

    records: int
    candidate_pairs: int
    pairs_written: int
    links: int
    clusters: int
    model_version: str
    output: str


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
) -> LinkResult:
    """Train (or load) a model, score the input's candidate pairs and cluster them.

    Writes ``<output>/pairs`` (``source_l, record_key_l, source_r, record_key_r,
    match_weight, match_probability, model_version, run_id``; pairs below
    ``min_match_probability_written`` are left out), ``<output>/clusters`` (``record_key,
    cluster_id``, every input record) and ``<output>/model.json``.

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

    Raises:
        CandidatePairBudgetExceeded: the blocking rules would give more pairs than the budget.
        ValueError: bad input columns, ids or formats.
    """
    if output_fmt not in OUTPUT_FORMATS:
        raise ValueError(f"output format must be one of {OUTPUT_FORMATS}, got {output_fmt!r}")
    source = Path(input_path.rstrip("/")).stem or "input"
    records = prepare_records(read_records(spark, input_path, input_fmt), cfg, id_column, source).cache()
    n_records = records.count()
    if model_path:
        settings = json.loads(_read_text(spark, model_path))
        model = LinkageModel(version=Path(model_path).stem, settings=settings)
    else:
        model = train_model(spark, records, cfg, new_model_version())
    scored = score(spark, records, model, cfg, run_id)
    _write(scored.edges, f"{output}/pairs", output_fmt)
    clustered = clusters(
        scored, cfg.threshold_match_probability, cfg.max_cluster_size, cfg.split_thresholds
    ).select("record_key", "cluster_id")
    _write(clustered, f"{output}/clusters", output_fmt)
    _write_text(spark, f"{output}/model.json", json.dumps(dict(model.settings), indent=2, sort_keys=True))
    pairs = (
        spark.read.format("csv" if output_fmt == "csv" else output_fmt)
        .option("header", True)
        .load(f"{output}/pairs")
    )
    links = pairs.where(F.col("match_probability").cast("double") >= cfg.threshold_match_probability).count()
    written = (
        spark.read.format("csv" if output_fmt == "csv" else output_fmt)
        .option("header", True)
        .load(f"{output}/clusters")
    )
    n_clusters = written.select("cluster_id").distinct().count()
    records.unpersist()
    return LinkResult(
        records=n_records,
        candidate_pairs=scored.candidate_pairs,
        pairs_written=pairs.count(),
        links=links,
        clusters=n_clusters,
        model_version=model.version,
        output=output,
    )
