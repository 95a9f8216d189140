"""Batch consumer: one file per segment with the fields an email platform imports.

Reads gold/segment_membership (open stays) and gold/customer_profile (contact fields) and
writes ``<segment_id>.csv`` and/or ``<segment_id>.jsonl`` with ``email, first_name,
customer_id, segment_id, entered_at``. Gold already publishes only members whose consent
covers the segment's purpose; the export checks it again against the *current* profile, so
a customer who withdrew consent after the last segment run is not exported (counted as
``withheld``).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdplake.config.segments import SegmentsConfig, load_segments_config
from cdplake.io.delta import read_table
from cdplake.privacy.consent import enforce_consent

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdplake.config import EnvConfig

EXPORT_COLUMNS = ("email", "first_name", "customer_id", "segment_id", "entered_at")
FORMATS = ("csv", "json")


@dataclass(frozen=True)
class SegmentExport:
    """One segment's export: rows written, members withheld, and the files."""

    segment_id: str
    rows: int
    withheld: int
    files: tuple[str, ...]


def segment_export_rows(
    membership: DataFrame,
    profile: DataFrame,
    segments: SegmentsConfig,
    segment_ids: Sequence[str] | None = None,
) -> tuple[DataFrame, DataFrame]:
    """Rows to export and the count withheld per segment.

    Args:
        membership: gold/segment_membership.
        profile: gold/customer_profile (``email``, ``first_name`` and the consent columns).
        segments: definitions and purposes (consent is checked per purpose).
        segment_ids: the segments to export; every defined one when None.

    Returns:
        ``(rows, withheld)``: rows shaped like :data:`EXPORT_COLUMNS`, ordered by segment and
        customer; ``withheld`` is ``segment_id, withheld`` (open stays not exported: consent
        no longer given, or no email on the profile).
    """
    definitions = [d for d in segments.segments if segment_ids is None or d.id in segment_ids]
    wanted = [d.id for d in definitions]
    current = membership.where(F.col("is_member") & F.col("segment_id").isin(wanted)).select(
        "segment_id", "customer_id", "entered_at"
    )
    allowed, _ = enforce_consent(current, profile, definitions, segments.purposes)
    rows = (
        allowed.join(profile.select("customer_id", "email", "first_name"), "customer_id")
        .where(F.col("email").isNotNull())
        .select(*EXPORT_COLUMNS)
        .orderBy("segment_id", "customer_id")
    )
    ids = membership.sparkSession.createDataFrame([(i,) for i in wanted], "segment_id STRING")
    exported = rows.groupBy("segment_id").agg(F.count(F.lit(1)).alias("n"))
    opened = current.groupBy("segment_id").agg(F.count(F.lit(1)).alias("m"))
    withheld = (
        ids.join(opened, "segment_id", "left")
        .join(exported, "segment_id", "left")
        .select(
            "segment_id",
            (F.coalesce(F.col("m"), F.lit(0)) - F.coalesce(F.col("n"), F.lit(0)))
            .cast("bigint")
            .alias("withheld"),
        )
    )
    return rows, withheld


def write_single_file(df: DataFrame, fmt: str, target: str) -> None:
    """Write ``df`` as exactly one file at ``target`` (any Hadoop filesystem).

    Spark writes a folder of part files; the one part is renamed to ``target`` and the
    folder removed, so an email platform gets one plain file per segment.
    """
    spark = df.sparkSession
    staging = f"{target}.__staging"
    writer = df.coalesce(1).write.mode("overwrite")
    if fmt == "csv":
        writer.option("header", "true").option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ssXXX").csv(staging)
    elif fmt == "json":
        writer.option("timestampFormat", "yyyy-MM-dd'T'HH:mm:ssXXX").json(staging)
    else:
        raise ValueError(f"format must be one of {FORMATS}, got {fmt!r}")
    jvm = spark.sparkContext._jvm
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    folder = jvm.org.apache.hadoop.fs.Path(staging)
    fs = folder.getFileSystem(conf)
    parts = [s.getPath() for s in fs.listStatus(folder) if s.getPath().getName().startswith("part-")]
    if len(parts) > 1:
        raise RuntimeError(f"expected one part file in {staging}, found {len(parts)}")
    out = jvm.org.apache.hadoop.fs.Path(target)
    fs.delete(out, False)
    if not parts:
        # An empty frame may leave no part file at all; the platform still gets a file (for
        # CSV, the header alone) so "segment is empty" differs from "export did not run".
        stream = fs.create(out, True)
        if fmt == "csv":
            stream.write(bytearray((",".join(df.columns) + "\n").encode()))
        stream.close()
    elif not fs.rename(parts[0], out):
        raise RuntimeError(f"could not move {parts[0]} to {target}")
    fs.delete(folder, True)
    # Hadoop's local filesystem keeps a hidden .<name>.crc beside each file; an import folder
    # should hold the export files only.
    crc = jvm.org.apache.hadoop.fs.Path(out.getParent(), f".{out.getName()}.crc")
    if fs.exists(crc):
        fs.delete(crc, False)


def export_segments(
    spark: SparkSession,
    env: EnvConfig,
    out_dir: str,
    *,
    formats: Sequence[str] = FORMATS,
    segment_ids: Sequence[str] | None = None,
    segments: SegmentsConfig | None = None,
) -> list[SegmentExport]:
    """Write ``<out_dir>/<segment_id>.csv`` / ``.jsonl`` for every segment (empty ones too).

    Args:
        spark: the session.
        env: the environment (paths, ``conf_dir``).
        out_dir: target folder (local path or ``s3a://`` URI); files are replaced.
        formats: any of ``csv``, ``json``.
        segment_ids: the segments to export; all defined ones by default.
        segments: definitions; loaded from ``env.conf_dir`` by default.

    Returns:
        One entry per segment.
    """
    unknown = [f for f in formats if f not in FORMATS]
    if unknown:
        raise ValueError(f"unknown export format(s) {unknown}; expected some of {FORMATS}")
    segments = segments or load_segments_config(env.conf_dir)
    membership = read_table(spark, env.paths.table("gold", "segment_membership"))
    profile = read_table(spark, env.paths.table("gold", "customer_profile"))
    rows, withheld = segment_export_rows(membership, profile, segments, segment_ids)
    rows = rows.localCheckpoint(eager=True)  # one snapshot for every file and count
    held = {r["segment_id"]: int(r["withheld"]) for r in withheld.collect()}
    results: list[SegmentExport] = []
    base = out_dir.rstrip("/")
    for seg in sorted(held):
        part = rows.where(F.col("segment_id") == seg)
        files = []
        for fmt in formats:
            target = f"{base}/{seg}.{'jsonl' if fmt == 'json' else 'csv'}"
            write_single_file(part, fmt, target)
            files.append(target)
        results.append(SegmentExport(seg, part.count(), held[seg], tuple(files)))
    return results
