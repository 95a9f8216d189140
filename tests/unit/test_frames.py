"""cdplake.io.frames: a frame computed once for several reads, then freed."""

from __future__ import annotations

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.io.frames import materialize, release


def _stored_rdds(spark) -> set[int]:
    return {info.id() for info in spark.sparkContext._jsc.sc().getRDDStorageInfo()}


def test_a_materialized_frame_is_computed_once_and_freed_on_release(spark):
    calls = spark.sparkContext.accumulator(0)

    @F.udf("long")
    def counted(x):
        calls.add(1)
        return x

    held = materialize(spark.range(5).select(counted("id").alias("id")))
    assert calls.value == 5  # computed when materialized
    rdd = held._jdf.logicalPlan().rdd().id()
    assert rdd in _stored_rdds(spark)

    # Two more reads, one of them a join: the stored rows, no second evaluation.
    assertDataFrameEqual(held.where("id >= 3"), spark.createDataFrame([(3,), (4,)], "id BIGINT"))
    assert held.join(held.withColumnRenamed("id", "other"), F.col("id") == F.col("other")).count() == 5
    assert calls.value == 5

    release(held)
    assert rdd not in _stored_rdds(spark)


def test_releasing_a_frame_that_was_not_materialized_changes_nothing(spark):
    df = spark.range(3)
    release(df)
    assert df.count() == 3
