"""cdplake.io.delta on temp Delta paths: MERGE, idempotent append, availableNow streams."""

from __future__ import annotations

import pytest
from pyspark.testing import assertDataFrameEqual

from cdplake.io.delta import (
    BOOKKEEPING,
    STATS_COLUMNS,
    MergeMetrics,
    append,
    append_bookkeeping,
    compact_now_and_then,
    create_if_absent,
    merge_into,
    read_stream,
    read_table,
    run_stream,
    stats_on,
    table_exists,
    table_properties,
    table_version,
)

pytestmark = pytest.mark.integration

SCHEMA = "id STRING, v STRING, updated INT"


def test_merge_into_creates_inserts_and_updates_only_when_newer(spark, tmp_path):
    path = str(tmp_path / "t")
    assert not table_exists(spark, path)

    first = spark.createDataFrame([("a", "a1", 1), ("b", "b1", 1)], SCHEMA)
    assert merge_into(
        first, path, ["id"], update_condition="s.updated > t.updated", enable_cdf=True
    ) == MergeMetrics(2, 0)
    assert table_exists(spark, path)
    props = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["properties"]
    assert props.get("delta.enableChangeDataFeed") == "true"

    # a: newer -> updated; b: older -> kept; c: new -> inserted
    second = spark.createDataFrame([("a", "a2", 2), ("b", "b0", 0), ("c", "c1", 1)], SCHEMA)
    assert merge_into(second, path, ["id"], update_condition="s.updated > t.updated") == MergeMetrics(1, 1)
    expected = spark.createDataFrame([("a", "a2", 2), ("b", "b1", 1), ("c", "c1", 1)], SCHEMA)
    assertDataFrameEqual(read_table(spark, path), expected)

    # insert-only: matched keys are never touched, replaying the same rows changes nothing
    third = spark.createDataFrame([("a", "a9", 9), ("d", "d1", 1)], SCHEMA)
    assert merge_into(third, path, ["id"], insert_only=True) == MergeMetrics(1, 0)
    assert merge_into(third, path, ["id"], insert_only=True) == MergeMetrics(0, 0)
    expected = spark.createDataFrame([("a", "a2", 2), ("b", "b1", 1), ("c", "c1", 1), ("d", "d1", 1)], SCHEMA)
    assertDataFrameEqual(read_table(spark, path), expected)


def test_append_skips_a_replayed_txn_version(spark, tmp_path):
    path = str(tmp_path / "t")
    batch0 = spark.createDataFrame([("a", "x", 0)], SCHEMA)
    batch1 = spark.createDataFrame([("b", "y", 1)], SCHEMA)

    assert append(batch0, path, app_id="writer", version=0) is True
    # the same micro-batch replayed after a crash: Delta skips it
    assert append(batch0, path, app_id="writer", version=0) is False
    assert append(batch1, path, app_id="writer", version=1) is True
    # another writer has its own versions
    assert append(batch0, path, app_id="other", version=0) is True

    expected = spark.createDataFrame([("a", "x", 0), ("b", "y", 1), ("a", "x", 0)], SCHEMA)
    assertDataFrameEqual(read_table(spark, path), expected)


def _operations(spark, path: str) -> list[str]:
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("version", "operation").collect()
    return [r["operation"] for r in sorted(history, key=lambda r: r["version"])]


def test_a_bookkeeping_table_is_compacted_every_n_commits_and_not_before(spark, tmp_path):
    path = str(tmp_path / "t")
    rows = [spark.createDataFrame([(f"k{i}", "x", i)], SCHEMA) for i in range(6)]
    compacted = []
    for i, row in enumerate(rows):
        assert append(row, path, app_id="cycles", version=i, properties=BOOKKEEPING) is True
        compacted.append(compact_now_and_then(spark, path, every=4))
    # Writes are versions 0-4; version 4 is a multiple of 4, so the OPTIMIZE is version 5 and
    # the sixth write version 6. Delta's own auto compaction (off here) would have compacted
    # right after the first write.
    assert compacted == [False, False, False, False, True, False]
    assert _operations(spark, path) == ["WRITE"] * 5 + ["OPTIMIZE", "WRITE"]
    detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
    assert detail["properties"] == BOOKKEEPING == {"delta.autoOptimize.autoCompact": "false"}
    assert detail["numFiles"] == 2  # the compacted file and the sixth write's
    expected = spark.createDataFrame([(f"k{i}", "x", i) for i in range(6)], SCHEMA)
    assertDataFrameEqual(read_table(spark, path), expected)


def test_a_table_made_with_delta_auto_compaction_has_it_turned_off_at_its_next_write(spark, tmp_path):
    path = str(tmp_path / "t")
    row = spark.createDataFrame([("a", "x", 0)], SCHEMA)
    row.write.format("delta").option("delta.autoOptimize.autoCompact", "true").save(path)
    before = len(_operations(spark, path))
    for _ in range(3):
        append_bookkeeping(row, path)
    assert table_properties(spark, path)["delta.autoOptimize.autoCompact"] == "false"
    # The property change, then three writes and nothing else.
    assert _operations(spark, path)[before:] == ["SET TBLPROPERTIES", "WRITE", "WRITE", "WRITE"]
    assert read_table(spark, path).count() == 4


def test_run_stream_available_now_processes_only_new_commits(spark, tmp_path):
    source, checkpoint = str(tmp_path / "src"), str(tmp_path / "_checkpoints" / "sink")
    seen: list[tuple[int, list[str]]] = []

    def collect(batch, batch_id):
        seen.append((batch_id, sorted(r["id"] for r in batch.collect())))

    spark.createDataFrame([("a", "x", 0), ("b", "x", 0)], SCHEMA).write.format("delta").save(source)
    run_stream(read_stream(spark, source), checkpoint=checkpoint, foreach_batch=collect)
    run_stream(read_stream(spark, source), checkpoint=checkpoint, foreach_batch=collect)  # nothing new
    spark.createDataFrame([("c", "x", 0)], SCHEMA).write.format("delta").mode("append").save(source)
    query = run_stream(read_stream(spark, source), checkpoint=checkpoint, foreach_batch=collect)

    assert seen == [(0, ["a", "b"]), (1, ["c"])]
    assert not query.isActive


def test_threads_that_append_to_a_new_table_at_once_all_land(spark, tmp_path):
    # Sources run side by side share quality tables: the first writes create them together.
    from cdplake.io.concurrent import run_side_by_side

    path = str(tmp_path / "shared")
    frames = {f"w{i}": spark.createDataFrame([(f"w{i}", f"v{i}", i)], SCHEMA) for i in range(4)}
    tasks = {
        name: (
            lambda df=df, name=name: append(
                df, path, app_id=f"writer.{name}", version=0, properties=BOOKKEEPING
            )
        )
        for name, df in frames.items()
    }
    assert run_side_by_side(tasks, workers=4) == dict.fromkeys(frames, True)
    expected = spark.createDataFrame([(f"w{i}", f"v{i}", i) for i in range(4)], SCHEMA)
    assertDataFrameEqual(read_table(spark, path), expected)
    props = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["properties"]
    assert props.get("delta.autoOptimize.autoCompact") == "false"


def file_stats(spark, path: str) -> list[str]:
    """The ``stats`` JSON of every file added to the Delta table at ``path``."""
    log = spark.read.json(f"{path}/_delta_log/*.json")
    return sorted(r["stats"] for r in log.where("add IS NOT NULL").select("add.stats").collect())


def test_file_statistics_are_kept_to_the_named_columns(spark, tmp_path):
    rows = spark.createDataFrame([("a", "x" * 50, 1), ("b", "y", 2)], SCHEMA).coalesce(1)
    props = stats_on("id", "updated")
    assert props == {STATS_COLUMNS: "`id`,`updated`"}
    appended, merged, created = (str(tmp_path / name) for name in ("appended", "merged", "created"))

    append(rows, appended, app_id="w", version=0, properties=props)
    merge_into(rows, merged, ["id"], properties=props)
    create_if_absent(rows, created, properties=props)

    for path in (appended, merged, created):
        assert (
            spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()["properties"][STATS_COLUMNS]
            == "`id`,`updated`"
        )
    # No min/max of v; the row count is still there, so count() is answered from the log.
    expected = (
        '{"numRecords":2,"minValues":{"id":"a","updated":1},'
        '"maxValues":{"id":"b","updated":2},"nullCount":{"id":0,"updated":0}}'
    )
    assert file_stats(spark, appended) == [expected]
    assert file_stats(spark, merged) == [expected]
    with pytest.raises(ValueError, match="at least one column"):
        stats_on()


def test_tables_created_before_a_property_get_it_at_their_next_write(spark, tmp_path):
    rows = spark.createDataFrame([("a", "x" * 50, 1), ("b", "y", 2)], SCHEMA).coalesce(1)
    props = stats_on("id", "updated")
    appended, merged, created = (str(tmp_path / name) for name in ("appended", "merged", "created"))
    for path in (appended, merged, created):  # as an older release made them: no property
        rows.write.format("delta").save(path)
        assert STATS_COLUMNS not in table_properties(spark, path)
        assert ['"v":' in stats for stats in file_stats(spark, path)] == [True]  # every column
    # A stream reads the table across the property change (silver streams read bronze).
    seen: list[tuple[str, int]] = []

    def collect(batch, batch_id):
        seen.extend((r["id"], r["updated"]) for r in batch.collect())

    def read_new_rows() -> None:
        checkpoint = str(tmp_path / "_checkpoint")
        run_stream(read_stream(spark, appended), checkpoint=checkpoint, foreach_batch=collect)

    read_new_rows()

    assert append(rows, appended, app_id="w", version=0, properties=props)
    assert merge_into(rows, merged, ["id"], insert_only=True, properties=props) == MergeMetrics(0, 0)
    create_if_absent(rows, created, properties=props)

    # One commit sets the property; the append adds its own (the MERGE inserted nothing, so
    # it committed nothing). The files written before keep their statistics; the appended
    # file has them on the named columns only.
    assert [table_version(spark, p) for p in (appended, merged, created)] == [2, 1, 1]
    for path in (appended, merged, created):
        assert table_properties(spark, path)[STATS_COLUMNS] == "`id`,`updated`"
    limited = (
        '{"numRecords":2,"minValues":{"id":"a","updated":1},'
        '"maxValues":{"id":"b","updated":2},"nullCount":{"id":0,"updated":0}}'
    )
    assert [stats == limited for stats in file_stats(spark, appended)] == [True, False]
    read_new_rows()
    assert sorted(seen) == [("a", 1), ("a", 1), ("b", 2), ("b", 2)]
    assert ['"v":' in stats for stats in file_stats(spark, merged)] == [True]

    # A table that already has the property is not altered again.
    assert append(rows, appended, app_id="w", version=1, properties=props)
    create_if_absent(rows, created, properties=props)
    assert [table_version(spark, p) for p in (appended, created)] == [3, 1]
