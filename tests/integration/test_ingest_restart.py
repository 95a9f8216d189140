"""Crash and restart of a streaming ingest: exactly once, proven on whole tables.

The same landing files go through two lakes. Lake A runs undisturbed (scheduled,
``availableNow``). Lake B runs continuously (a processing-time trigger, one file per
micro-batch), is stopped mid-run after its first batch commits, then has its last checkpoint
commit removed (a crash after the Delta commit but before the checkpoint commit), and is
restarted. Bronze, the file manifest, silver and quarantine of B must equal A's, and a further
run with nothing new must change nothing.
"""

from __future__ import annotations

import datetime as dt
import os
import time
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.bronze import IngestResult, ingest_source, start_ingest
from cdplake.config import load_env
from cdplake.io.delta import read_table, table_version
from cdplake.silver import SilverResult, build_silver_table

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
T1 = dt.datetime(2026, 10, 6, 1, 0, tzinfo=dt.timezone.utc)
RUN = "run-1"  # the same run id in both lakes so batch ids (lineage) compare equal


def page(mid: str, minute: int) -> str:
    return f'{{"messageId":"{mid}","type":"page","anonymousId":"a1","timestamp":"2026-10-05T10:{minute:02d}:00Z"}}'


FILES = {
    "events-0001.jsonl": [page("m1", 1), page("m2", 2)],
    "events-0002.jsonl": [page("m3", 3), "not json"],
    # m2 again, a later delivery: deduplicated across micro-batches
    "events-0003.jsonl": [page("m2", 2), page("m4", 4)],
    "events-0004.jsonl": [page("m5", 5)],
}


def lake(tmp_path: Path, name: str):
    env = load_env(
        "local",
        conf_dir=REPO / "conf",
        environ={**os.environ, "CDPLAKE__STORAGE__ROOT": str(tmp_path / name)},
    )
    folder = Path(env.paths.landing("events")) / "2026-10-05"
    folder.mkdir(parents=True)
    for i, (name_, lines) in enumerate(FILES.items()):
        path = folder / name_
        path.write_text("".join(line + "\n" for line in lines), encoding="utf-8")
        # the file source takes files oldest first: a minute apart, in name order
        os.utime(path, (1_790_000_000 + 60 * i,) * 2)
    return env


def table(spark, env, layer: str, name: str):
    """A whole table with ``_source_file`` made relative to the lake, so two lakes compare."""
    df = read_table(spark, env.paths.table(layer, name))
    column = "file" if name.endswith("_files") else "_source_file"
    root = "file:" + env.storage.root
    return df.withColumn(column, F.replace(F.col(column), F.lit(root), F.lit("<lake>")))


def wait_for(condition, timeout: float = 180.0) -> None:
    """Poll ``condition`` until true; fail after ``timeout`` seconds (a guard, not a timing assertion)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "timed out waiting for the stream"
        time.sleep(0.2)


def test_stream_stopped_mid_run_and_crashed_restarts_exactly_once(spark, tmp_path):
    a, b = lake(tmp_path, "a"), lake(tmp_path, "b")

    # A: undisturbed, one scheduled run, one file per micro-batch
    full = ingest_source(spark, a, "events", RUN, clock=lambda: T1, max_files_per_trigger=1)
    assert full == IngestResult("events", rows=7, files=4, batches=4)
    silver_a = build_silver_table(spark, a, "events", RUN, clock=lambda: T1, dataset_checks=False)
    # 7 bronze rows = 5 messages (m1-m5) + 1 quarantined + 1 deduplicated (the second m2)
    # the Delta source takes all four bronze commits in one micro-batch
    # (the test pages carry no url: a warn rule of conf/quality/events.yaml counts the 6 valid ones)
    assert silver_a == SilverResult(
        "events", 7, 5, 1, 1, rows_inserted=5, batches=1, rule_failures=(("events_page_has_url", "warn", 6),)
    )

    # B: continuous; stop the query as soon as its first micro-batch has committed.
    # The long interval keeps the query idle between batch 0 and batch 1: a stop that
    # interrupts the planning of batch 1 (the file source logs its next file before the
    # offset log does) is exactly-once too, but Spark then groups files 2 and 3 into one
    # batch on restart, so the batch ids (lineage) would no longer match lake A's.
    query = start_ingest(spark, b, "events", RUN, "60 seconds", clock=lambda: T1, max_files_per_trigger=1)
    try:
        wait_for(lambda: any(p.batchId == 0 and p.numInputRows > 0 for p in query.recentProgress))
    finally:
        query.stop()
    # silver catches up with what bronze has so far
    build_silver_table(spark, b, "events", RUN, clock=lambda: T1, dataset_checks=False)
    # ...then a crash: the last batch's Delta commits happened, its checkpoint commit did not
    commits = Path(b.paths.checkpoint("bronze_events")) / "commits"
    last = max(int(p.name) for p in commits.iterdir() if p.name.isdigit())
    for name in (str(last), f".{last}.crc"):
        (commits / name).unlink(missing_ok=True)
    assert last < 3, "the stream was stopped mid-run, not after the last file"

    ingest_source(spark, b, "events", RUN, clock=lambda: T1, max_files_per_trigger=1)
    build_silver_table(spark, b, "events", RUN, clock=lambda: T1, dataset_checks=False)

    for layer, name in [
        ("bronze", "events"),
        ("bronze", "events_files"),
        ("silver", "events"),
        ("quarantine", "events"),
    ]:
        assertDataFrameEqual(table(spark, b, layer, name), table(spark, a, layer, name))
    # and the tables are what the files say: 7 lines in bronze, 5 messages in silver
    assertDataFrameEqual(
        table(spark, b, "silver", "events").select("message_id", "_source_file", "_batch_id"),
        spark.createDataFrame(
            [
                ("m1", "<lake>/landing/events/2026-10-05/events-0001.jsonl", "run-1:0"),
                ("m2", "<lake>/landing/events/2026-10-05/events-0001.jsonl", "run-1:0"),
                ("m3", "<lake>/landing/events/2026-10-05/events-0002.jsonl", "run-1:1"),
                ("m4", "<lake>/landing/events/2026-10-05/events-0003.jsonl", "run-1:2"),
                ("m5", "<lake>/landing/events/2026-10-05/events-0004.jsonl", "run-1:3"),
            ],
            "message_id STRING, _source_file STRING, _batch_id STRING",
        ),
    )

    # nothing new: a rerun is a no-op, no commit anywhere
    versions = [table_version(spark, b.paths.table(*t)) for t in (("bronze", "events"), ("silver", "events"))]
    assert ingest_source(spark, b, "events", "run-2", clock=lambda: T1) == IngestResult("events")
    assert build_silver_table(
        spark, b, "events", "run-2", clock=lambda: T1, dataset_checks=False
    ) == SilverResult("events")
    assert [
        table_version(spark, b.paths.table(*t)) for t in (("bronze", "events"), ("silver", "events"))
    ] == versions
