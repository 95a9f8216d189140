"""The streaming pipeline's progress table: one row per committed cycle.

A cycle's gold writes (profile MERGE, membership MERGE, summary upsert) are each idempotent
for a given cycle input; what makes the cycle as a whole exactly-once is that its input is
recorded here only *after* they all committed. A cycle killed at any point before that row
exists is simply redone on restart, from the last committed row, with the same cycle id
(so the same ``run_id`` and, with a fixed ``as_of``, the same values). The row itself is
appended with ``txnAppId``/``txnVersion = cycle_id`` so committing a cycle twice is a no-op.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from cdplake.io.delta import append_bookkeeping, read_table, table_exists

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdplake.config import EnvConfig

PROGRESS_APP_ID = "cdplake.streaming.gold"
PROGRESS_DDL = (
    "cycle_id BIGINT NOT NULL, run_id STRING NOT NULL, as_of TIMESTAMP, "
    "silver_versions MAP<STRING, BIGINT>, identity_version BIGINT, touched_customers BIGINT, "
    "removed_customers BIGINT, full_rebuild BOOLEAN, committed_at TIMESTAMP"
)


def progress_path(env: EnvConfig) -> str:
    """Where the progress table lives (``delta/streaming/progress``)."""
    return env.paths.table("streaming", "progress")


def cycle_run_id(cycle_id: int) -> str:
    """The ``run_id`` a cycle stamps on gold rows: a function of the cycle, not of the process,
    so a cycle redone after a crash stamps the same id as the attempt that died."""
    return f"stream_c{cycle_id:06d}"


@dataclass(frozen=True)
class CycleProgress:
    """What a committed cycle consumed.

    Attributes:
        cycle_id: 1, 2, ... in commit order.
        silver_versions: silver table name -> Delta version the cycle read (-1: absent).
        identity_version: version of identity/record_customer the cycle's gold was built on.
        as_of: the cycle's evaluation time.
        touched_customers: customers whose profile and membership were recomputed.
        removed_customers: customer ids that no longer exist (merged into another).
        full_rebuild: every customer was recomputed (first cycle, or the profile's columns changed).
    """

    cycle_id: int
    silver_versions: dict[str, int] = field(default_factory=dict)
    identity_version: int = -1
    as_of: dt.datetime | None = None
    touched_customers: int = 0
    removed_customers: int = 0
    full_rebuild: bool = False


def last_progress(spark: SparkSession, env: EnvConfig) -> CycleProgress | None:
    """The newest committed cycle, or None before the first one."""
    path = progress_path(env)
    if not table_exists(spark, path):
        return None
    from pyspark.sql import functions as F

    # as_of travels as epoch microseconds: a collected TIMESTAMP is a naive datetime in the
    # driver's local zone, which would shift it on a machine not set to UTC.
    row = (
        read_table(spark, path)
        .withColumn("as_of_us", F.unix_micros("as_of"))
        .orderBy("cycle_id", ascending=False)
        .first()
    )
    if row is None:
        return None
    return CycleProgress(
        cycle_id=int(row["cycle_id"]),
        silver_versions={k: int(v) for k, v in (row["silver_versions"] or {}).items()},
        identity_version=int(row["identity_version"]),
        as_of=(
            None
            if row["as_of_us"] is None
            else dt.datetime(1970, 1, 1, tzinfo=dt.timezone.utc) + dt.timedelta(microseconds=row["as_of_us"])
        ),
        touched_customers=int(row["touched_customers"]),
        removed_customers=int(row["removed_customers"]),
        full_rebuild=bool(row["full_rebuild"]),
    )


def commit_progress(spark: SparkSession, env: EnvConfig, progress: CycleProgress) -> bool:
    """Append the cycle's row, at most once per ``cycle_id``.

    Returns:
        True when written, False when this cycle had already been committed.
    """
    from pyspark.sql import functions as F

    row = spark.createDataFrame(
        [
            (
                progress.cycle_id,
                cycle_run_id(progress.cycle_id),
                progress.as_of,
                progress.silver_versions,
                progress.identity_version,
                progress.touched_customers,
                progress.removed_customers,
                progress.full_rebuild,
            )
        ],
        PROGRESS_DDL.rsplit(",", 1)[0],
    ).withColumn("committed_at", F.current_timestamp())
    return append_bookkeeping(row, progress_path(env), app_id=PROGRESS_APP_ID, version=progress.cycle_id)
