"""gold/customer_profile_history in Delta: one MERGE per run, SCD type 2, idempotent."""

from __future__ import annotations

import datetime as dt

import pytest
from pyspark.testing import assertDataFrameEqual

from cdplake.features import ATTRIBUTES
from cdplake.io.delta import table_version
from cdplake.segments import HISTORY_TABLE, PROFILE_HISTORY_DDL, merge_profile_history

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
RUN1_AT = dt.datetime(2026, 11, 2, tzinfo=UTC)
RUN2_AT = dt.datetime(2026, 11, 25, tzinfo=UTC)
PROFILE_DDL = "customer_id STRING, " + ", ".join(f"{a} STRING" for a in ATTRIBUTES)


def attrs(email=None, city=None) -> tuple:
    """The eight golden attributes; the test varies email and city, the rest stay null."""
    values = dict.fromkeys(ATTRIBUTES)
    values.update(email=email, city=city)
    return tuple(values[a] for a in ATTRIBUTES)


def test_history_merge_twice_then_repeated(spark, lake_env):
    path = lake_env.paths.table("gold", HISTORY_TABLE)

    def apply(rows, at, run_id, scope=None):
        profile = spark.createDataFrame([(cid, *values) for cid, values in rows], PROFILE_DDL)
        return merge_profile_history(spark, path, profile, at, run_id, scope=scope)

    def history():
        return spark.read.format("delta").load(path)

    first = apply([("ann", attrs("ann@x.com", "London")), ("bob", attrs("bob@y.com"))], RUN1_AT, "run-1")
    assert (first.inserted, first.updated) == (2, 0)

    run2 = [("ann", attrs("ann@x.com", "Paris")), ("cat", attrs("cat@z.com", "Oslo"))]
    second = apply(run2, RUN2_AT, "run-2")
    # ann changed: 1 closed + 1 opened; bob gone: 1 closed; cat new: 1 opened
    assert (second.inserted, second.updated) == (2, 2)
    after_run2 = [
        ("ann", *attrs("ann@x.com", "London"), RUN1_AT, RUN2_AT, False, "run-2"),
        ("ann", *attrs("ann@x.com", "Paris"), RUN2_AT, None, True, "run-2"),
        ("bob", *attrs("bob@y.com"), RUN1_AT, RUN2_AT, False, "run-2"),
        ("cat", *attrs("cat@z.com", "Oslo"), RUN2_AT, None, True, "run-2"),
    ]
    expected = spark.createDataFrame(after_run2, PROFILE_HISTORY_DDL)
    assertDataFrameEqual(history(), expected)

    # run 2 again with the same inputs: nothing to do, not even an empty commit
    version = table_version(spark, path)
    again = apply(run2, RUN2_AT, "run-2")
    assert (again.inserted, again.updated) == (0, 0)
    assert table_version(spark, path) == version
    assertDataFrameEqual(history(), expected)

    # a cycle at the same as_of that recomputed cat only: her current version is corrected in
    # place (no zero-length version); ann, outside the scope, is not closed although absent
    scope = spark.createDataFrame([("cat",)], "customer_id STRING")
    fixed = apply([("cat", attrs("cat@z.com", "Bergen"))], RUN2_AT, "run-3", scope)
    assert (fixed.inserted, fixed.updated) == (0, 1)
    assertDataFrameEqual(
        history(),
        spark.createDataFrame(
            [
                *after_run2[:3],
                ("cat", *attrs("cat@z.com", "Bergen"), RUN2_AT, None, True, "run-3"),
            ],
            PROFILE_HISTORY_DDL,
        ),
    )
