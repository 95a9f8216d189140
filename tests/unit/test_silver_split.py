"""The split of checked rows into silver and quarantine, and what a batch keeps of raw records."""

from __future__ import annotations

import datetime as dt

from pyspark.testing import assertDataFrameEqual

from cdplake.silver._common import records_of_quarantined_rows, split_checked

CHECKED = (
    "id STRING, _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING, "
    "_record STRING, _reasons ARRAY<STRING>"
)
AT = dt.datetime(2026, 11, 1, 12, 0)


def test_only_quarantined_rows_keep_their_raw_record_and_the_split_is_unchanged(spark):
    checked = spark.createDataFrame(
        [
            ("a", "f1", AT, "b:0", '{"id":"a"}', []),
            ("b", "f1", AT, "b:0", '{"id":"b","ts":"soon"}', ["unparseable_timestamp"]),
            (None, "f2", AT, "b:0", "not json", ["malformed_json"]),
        ],
        CHECKED,
    )

    kept = records_of_quarantined_rows(checked)

    assertDataFrameEqual(
        kept,
        spark.createDataFrame(
            [
                ("a", "f1", AT, "b:0", None, []),
                ("b", "f1", AT, "b:0", '{"id":"b","ts":"soon"}', ["unparseable_timestamp"]),
                (None, "f2", AT, "b:0", "not json", ["malformed_json"]),
            ],
            CHECKED,
        ),
    )
    silver, quarantine = split_checked(kept, ["id"], AT)
    assertDataFrameEqual(
        silver,
        spark.createDataFrame(
            [("a", "f1", AT, "b:0")],
            "id STRING, _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING",
        ),
    )
    assertDataFrameEqual(
        quarantine,
        spark.createDataFrame(
            [
                ('{"id":"b","ts":"soon"}', ["unparseable_timestamp"], "f1", "b:0", AT),
                ("not json", ["malformed_json"], "f2", "b:0", AT),
            ],
            "record STRING, reasons ARRAY<STRING>, _source_file STRING, _batch_id STRING, _quarantined_at TIMESTAMP",
        ),
    )
    # Either way the quarantine gets the same rows.
    assertDataFrameEqual(split_checked(checked, ["id"], AT)[1], quarantine)
