"""SCD2 history transforms: versions per (key, time) and their validity intervals."""

from __future__ import annotations

import datetime as dt

from pyspark.testing import assertDataFrameEqual

from cdplake.silver.history import history_columns, history_versions, restate

UTC = dt.timezone.utc
LINEAGE = "_source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
ROWS = f"contact_id STRING, tier STRING, updated_at TIMESTAMP, {LINEAGE}"
OUT = (
    "contact_id STRING, tier STRING, updated_at TIMESTAMP, valid_from TIMESTAMP, valid_to TIMESTAMP, "
    f"is_current BOOLEAN, {LINEAGE}"
)
T1 = dt.datetime(2026, 10, 6, tzinfo=UTC)
T2 = dt.datetime(2026, 10, 7, tzinfo=UTC)


def day(d: int) -> dt.datetime:
    return dt.datetime(2026, 10, d, tzinfo=UTC)


def test_history_columns_put_the_interval_before_lineage():
    cols = ["contact_id", "updated_at", "_source_file", "_ingested_at", "_batch_id", "valid_from"]
    assert history_columns(cols) == [
        "contact_id",
        "updated_at",
        "valid_from",
        "valid_to",
        "is_current",
        "_source_file",
        "_ingested_at",
        "_batch_id",
    ]


def test_versions_collapse_copies_to_the_last_ingested_and_intervals_follow_updated_at(spark):
    rows = spark.createDataFrame(
        [
            # arrival order is not version order: 10-03 came first, 10-01 last
            ("c1", "gold", day(3), "f1", T1, "b1"),
            ("c1", "bronze", day(1), "f2", T2, "b2"),
            # the same version twice: the copy ingested later wins
            ("c1", "silver", day(2), "f1", T1, "b1"),
            ("c1", "silver+", day(2), "f2", T2, "b2"),
            ("c2", "gold", day(2), "f1", T1, "b1"),
        ],
        ROWS,
    )
    out = restate(history_versions(rows, "contact_id", "updated_at"), "contact_id")
    assert out.columns == [n.split(" ")[0] for n in OUT.split(", ")]
    assertDataFrameEqual(
        out,
        spark.createDataFrame(
            [
                ("c1", "bronze", day(1), day(1), day(2), False, "f2", T2, "b2"),
                ("c1", "silver+", day(2), day(2), day(3), False, "f2", T2, "b2"),
                ("c1", "gold", day(3), day(3), None, True, "f1", T1, "b1"),
                ("c2", "gold", day(2), day(2), None, True, "f1", T1, "b1"),
            ],
            OUT,
        ),
    )


def test_restate_recomputes_stored_intervals(spark):
    # a stored current version and a late older one: the late one is closed by it
    stored = spark.createDataFrame([("c1", "gold", day(3), day(3), None, True, "f1", T1, "b1")], OUT)
    late = spark.createDataFrame([("c1", "bronze", day(2), day(2), day(9), True, "f2", T2, "b2")], OUT)
    assertDataFrameEqual(
        restate(stored.unionByName(late), "contact_id"),
        spark.createDataFrame(
            [
                ("c1", "bronze", day(2), day(2), day(3), False, "f2", T2, "b2"),
                ("c1", "gold", day(3), day(3), None, True, "f1", T1, "b1"),
            ],
            OUT,
        ),
    )
