"""Compute a frame once when several writes of one micro-batch read it.

``DataFrame.persist`` is a hint: a query whose plan is re-analysed differently misses the
cache and computes the frame again. Delta's MERGE does that to its source when the source
holds ``current_timestamp()`` (a row rule may), so silver conformed every raw line twice
(BENCHMARKS.md, "Landing → silver"). :func:`materialize` cuts the plan instead: every read
of the result reads the stored rows. :func:`release` frees them when the batch is done.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame


def materialize(df: DataFrame) -> DataFrame:
    """``df`` computed now and stored in executor memory (disk when it does not fit).

    A local checkpoint: the rows live with the executors that computed them. An executor
    lost before :func:`release` fails the query reading them; a streaming micro-batch is then
    replayed, and its writes are idempotent.
    """
    return df.localCheckpoint(eager=True)


def release(df: DataFrame) -> None:
    """Free the stored rows of a frame from :func:`materialize` (Spark's cleaner would
    only free them once the JVM collects the frame). The frame is unusable afterwards."""
    plan = df._jdf.logicalPlan()
    if plan.getClass().getSimpleName() == "LogicalRDD":
        plan.rdd().unpersist(False)
