"""Which landing files each bronze micro-batch took, and what became of each: ``bronze/<source>_files``.

The file source reads with ``ignoreCorruptFiles`` so a truncated gzip cannot stop the stream;
Spark then keeps the lines it could read and skips the rest with only a log warning. This
module makes that visible: for every file of a micro-batch it records the rows ingested and a
status, so no file is ever skipped silently:

- ``ingested``: the file was read whole (``rows`` may still include malformed lines).
- ``empty_file``: no records (zero bytes, or a CSV with only its header).
- ``corrupt_file``: the file cannot be read to its end (e.g. a truncated gzip); the rows read
  before the damage are in bronze, ``detail`` names the error.
- ``header_mismatch``: a CSV whose header names none of the contract's columns; its rows
  are kept in bronze as corrupt records (silver quarantines them as ``malformed_csv``).
  A header that only adds, lacks or reorders columns is ``ingested``, with a note in
  ``detail`` (see :mod:`cdplake.bronze.csv_header`).

The list of files in a micro-batch is the file source's own log in the query's checkpoint
(``sources/0/<batch id>``, or the ``.compact`` file every tenth batch): it is what Spark
committed to read for that batch, including files that yielded no rows.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

INGESTED = "ingested"
EMPTY_FILE = "empty_file"
CORRUPT_FILE = "corrupt_file"
HEADER_MISMATCH = "header_mismatch"
FILES_SCHEMA = (
    "source STRING, file STRING, size BIGINT, modified_at TIMESTAMP, rows BIGINT, status STRING, "
    "detail STRING, _ingested_at TIMESTAMP, _batch_id STRING"
)


@dataclass(frozen=True)
class LandedFile:
    """One file of a micro-batch as the checkpoint lists it, with its size and modification time."""

    path: str
    size: int
    modified_at: dt.datetime


def _hadoop(spark: SparkSession, path: str):
    jvm = spark.sparkContext._jvm
    hadoop_path = jvm.org.apache.hadoop.fs.Path(path)
    conf = spark.sparkContext._jsc.hadoopConfiguration()
    return jvm, hadoop_path, hadoop_path.getFileSystem(conf), conf


def _read_text(spark: SparkSession, path: str) -> str | None:
    jvm, p, fs, _ = _hadoop(spark, path)
    if not fs.exists(p):
        return None
    stream = fs.open(p)
    try:
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def batch_files(spark: SparkSession, checkpoint: str, batch_id: int) -> list[LandedFile]:
    """The landing files the file source assigned to micro-batch ``batch_id``.

    Args:
        spark: the session.
        checkpoint: the streaming query's checkpoint location.
        batch_id: the micro-batch id ``foreachBatch`` received.

    Returns:
        The files in the order Spark lists them; paths spelled as ``_metadata.file_path``.
    """
    log = f"{checkpoint.rstrip('/')}/sources/0/{batch_id}"
    text = _read_text(spark, log)
    if text is None:  # every tenth batch the log is compacted into one file of all batches
        text = _read_text(spark, log + ".compact") or ""
    files = []
    for line in text.splitlines()[1:]:  # the first line is the log format version ("v1")
        if not line.strip():
            continue
        entry = json.loads(line)
        if int(entry.get("batchId", batch_id)) != batch_id:
            continue
        jvm, p, fs, _ = _hadoop(spark, entry["path"])
        status = fs.getFileStatus(p)
        files.append(
            LandedFile(
                # Hadoop's Path spells a URI the way Spark's _metadata.file_path does (file:/x)
                str(status.getPath().toString()),
                int(status.getLen()),
                dt.datetime.fromtimestamp(status.getModificationTime() / 1000, tz=dt.timezone.utc),
            )
        )
    return files


def read_error(spark: SparkSession, path: str) -> str | None:
    """Why a compressed file cannot be read to its end (e.g. a truncated gzip), else None.

    Decompresses the file once on the driver with the Hadoop codec Spark's reader uses.
    Plain files are not read: their damage shows up as malformed records instead.
    """
    jvm, p, fs, conf = _hadoop(spark, path)
    codec = jvm.org.apache.hadoop.io.compress.CompressionCodecFactory(conf).getCodec(p)
    if codec is None:
        return None
    from py4j.protocol import Py4JJavaError

    stream = None
    try:
        stream = codec.createInputStream(fs.open(p))
        stream.transferTo(jvm.java.io.OutputStream.nullOutputStream())
    except Py4JJavaError as exc:
        err = exc.java_exception
        return f"{err.getClass().getName()}: {err.getMessage()}"
    finally:
        if stream is not None:
            stream.close()
    return None


def file_status(
    rows: int, error: str | None, note: str | None, *, header_mismatch: bool = False
) -> tuple[str, str | None]:
    """The ``(status, detail)`` of one landed file (see the module docstring).

    Args:
        rows: records the file gave bronze.
        error: why the file could not be read to its end, if so.
        note: a remark on the file's header (columns missing, rescued, reordered).
        header_mismatch: the header names none of the contract's columns.
    """
    if error is not None:
        return CORRUPT_FILE, error
    if header_mismatch:
        return HEADER_MISMATCH, note
    if rows == 0:
        return EMPTY_FILE, "no records"
    return INGESTED, note
