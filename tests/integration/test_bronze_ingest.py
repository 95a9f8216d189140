"""Landing → bronze on a temp lake: raw lines kept, lineage, no-op reruns, only new files."""

from __future__ import annotations

import datetime as dt
import gzip
import os
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from cdplake.bronze import CRM_COLUMNS, IngestResult, ingest_all, ingest_source
from cdplake.io.delta import read_table, table_exists, table_version

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
T1 = dt.datetime(2026, 10, 6, 1, 0, tzinfo=UTC)
T2 = dt.datetime(2026, 10, 7, 1, 0, tzinfo=UTC)
TEXT_BRONZE = (
    "value STRING, _rescued_data STRING, _contract_errors ARRAY<STRING>, _contract_version INT, "
    "_source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
)
CRM_HEADER = ",".join(CRM_COLUMNS) + "\n"


def land(env, source: str, name: str, content: str, day: str = "2026-10-05") -> str:
    """Write one landing file; returns the URI Spark reports as its ``_source_file``."""
    path = Path(env.paths.landing(source)) / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if name.endswith(".gz"):
        path.write_bytes(gzip.compress(content.encode()))
    else:
        path.write_text(content, encoding="utf-8")
    return f"file:{path}"


def test_ingest_keeps_raw_lines_and_only_picks_up_new_files(spark, lake_env):
    a = land(lake_env, "events", "events-0001.jsonl", '{"messageId":"m1"}\nnot json at all\n')
    b = land(lake_env, "events", "events-0002.jsonl.gz", '{"messageId":"m2"}\n')
    land(lake_env, "events", "events-0003.jsonl.tmp", '{"messageId":"half-writ')  # not a data file
    c = land(
        lake_env,
        "crm",
        "contacts-20261005.csv",
        CRM_HEADER
        + 'c1,Ann,Smith,ann@example.com,07700 900123,"1 High St\nFlat 2",London,SW1A 1AA,GB,1985-03-07,'
        "gold,true,2026-01-02T03:04:05Z,2026-10-01T12:00:00Z\n"
        "c2,Bob\n",
    )

    first = ingest_all(spark, lake_env, "run-1", clock=lambda: T1)

    assert first == {
        "events": IngestResult("events", rows=3, files=2, batches=1),
        "email": IngestResult("email"),  # nothing landed: no table, no error
        "orders": IngestResult("orders"),
        "crm": IngestResult("crm", rows=2, files=1, batches=1),
    }
    events = spark.createDataFrame(
        [
            ('{"messageId":"m1"}', None, [], 1, a, T1, "run-1:0"),
            ("not json at all", None, [], 1, a, T1, "run-1:0"),
            ('{"messageId":"m2"}', None, [], 1, b, T1, "run-1:0"),
        ],
        TEXT_BRONZE,
    )
    assertDataFrameEqual(read_table(spark, lake_env.paths.table("bronze", "events")), events)
    crm_schema = ", ".join(f"{col} STRING" for col in (*CRM_COLUMNS, "_corrupt_record")) + (
        ", _rescued_data STRING, _contract_version INT, _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
    )
    crm = spark.createDataFrame(
        [
            ("c1", "Ann", "Smith", "ann@example.com", "07700 900123", "1 High St\nFlat 2", "London", "SW1A 1AA",
             "GB", "1985-03-07", "gold", "true", "2026-01-02T03:04:05Z", "2026-10-01T12:00:00Z", None, None, 1, c, T1, "run-1:0"),
            # too few columns: kept whole in _corrupt_record
            ("c2", "Bob", *[None] * 12, "c2,Bob", None, 1, c, T1, "run-1:0"),
        ],
        crm_schema,
    )  # fmt: skip
    assertDataFrameEqual(read_table(spark, lake_env.paths.table("bronze", "crm")), crm)
    assert not table_exists(spark, lake_env.paths.table("bronze", "email"))

    # nothing new: no batch, no commit
    version = table_version(spark, lake_env.paths.table("bronze", "events"))
    assert ingest_all(spark, lake_env, "run-2", clock=lambda: T2)["events"] == IngestResult("events")
    assert table_version(spark, lake_env.paths.table("bronze", "events")) == version

    # a crash after the Delta commit but before the checkpoint commit replays batch 0 with the
    # same txnVersion: Delta skips it, nothing is appended twice
    for name in ("0", ".0.crc"):  # the local filesystem keeps a checksum beside each file
        (Path(lake_env.paths.checkpoint("bronze_events")) / "commits" / name).unlink(missing_ok=True)
    assert ingest_source(spark, lake_env, "events", "run-2", clock=lambda: T2) == IngestResult("events")
    assert table_version(spark, lake_env.paths.table("bronze", "events")) == version
    assertDataFrameEqual(read_table(spark, lake_env.paths.table("bronze", "events")), events)

    # one new file (another day): only its rows, in the next micro-batch
    d = land(lake_env, "events", "events-0001.jsonl", '{"messageId":"m3"}\n', day="2026-10-06")
    third = ingest_source(spark, lake_env, "events", "run-3", clock=lambda: T2)

    assert third == IngestResult("events", rows=1, files=1, batches=1)
    events = events.union(
        spark.createDataFrame([('{"messageId":"m3"}', None, [], 1, d, T2, "run-3:1")], TEXT_BRONZE)
    )
    assertDataFrameEqual(read_table(spark, lake_env.paths.table("bronze", "events")), events)


def test_ingest_splits_many_files_into_micro_batches(spark, lake_env):
    files = [land(lake_env, "email", f"email-{i:04d}.jsonl", f'{{"sg_event_id":"e{i}"}}\n') for i in range(3)]
    # the file source takes files oldest first: space the modification times a minute apart
    for i, uri in enumerate(files):
        os.utime(uri.removeprefix("file:"), (1_790_000_000 + 60 * i,) * 2)

    result = ingest_source(spark, lake_env, "email", "run-1", clock=lambda: T1, max_files_per_trigger=1)

    assert result == IngestResult("email", rows=3, files=3, batches=3)
    bronze = read_table(spark, lake_env.paths.table("bronze", "email"))
    # one file per batch, oldest first
    expected = spark.createDataFrame(
        [(f'{{"sg_event_id":"e{i}"}}', None, [], 1, f, T1, f"run-1:{i}") for i, f in enumerate(files)],
        TEXT_BRONZE,
    )
    assertDataFrameEqual(bronze, expected)


def test_additive_contract_change_evolves_bronze(spark, lake_env, tmp_path):
    import shutil

    from cdplake.config import load_env

    conf = tmp_path / "conf"
    shutil.copytree(Path(lake_env.conf_dir), conf)
    env = load_env(
        "local", conf_dir=conf, environ={**os.environ, "CDPLAKE__STORAGE__ROOT": lake_env.storage.root}
    )
    row = ",".join(["c1", "Ann", *[""] * 11, "2026-10-01T12:00:00Z"])
    c1 = land(env, "crm", "contacts-1.csv", f"{CRM_HEADER.strip()},preferred_store\n{row},s1\n")
    e1 = land(env, "events", "events-1.jsonl", '{"messageId":"m1","experiment":{"arm":"A"}}\n')
    ingest_all(spark, env, "run-1", clock=lambda: T1)

    # version 2 of both contracts adds the field the feeds started sending
    for source, field in (
        ("crm", "{name: preferred_store, type: string, since: 2}"),
        ("events", "{name: experiment, type: object, since: 2}"),
    ):
        path = conf / "contracts" / f"{source}.yaml"
        path.write_text(path.read_text().replace("version: 1", "version: 2") + f"  - {field}\n")
    c2 = land(
        env,
        "crm",
        "contacts-2.csv",
        f"{CRM_HEADER.strip()},preferred_store\n{row.replace('c1', 'c2')},s2\n",
        day="2026-10-06",
    )
    e2 = land(
        env, "events", "events-2.jsonl", '{"messageId":"m2","experiment":{"arm":"B"}}\n', day="2026-10-06"
    )
    ingest_all(spark, env, "run-2", clock=lambda: T2)

    crm = read_table(spark, env.paths.table("bronze", "crm"))
    # the new column is added to the table (at its end, after the lineage)
    assert crm.columns[-1] == "preferred_store"
    assertDataFrameEqual(
        crm.select("contact_id", "preferred_store", "_rescued_data", "_contract_version", "_source_file"),
        spark.createDataFrame(
            [
                ("c1", None, '{"preferred_store":"s1"}', 1, c1),  # v1: rescued, not lost
                ("c2", "s2", None, 2, c2),
            ],
            "contact_id STRING, preferred_store STRING, _rescued_data STRING, _contract_version INT, _source_file STRING",
        ),
    )
    assertDataFrameEqual(
        read_table(spark, env.paths.table("bronze", "events")).select(
            "value", "_rescued_data", "_contract_version"
        ),
        spark.createDataFrame(
            [
                ('{"messageId":"m1","experiment":{"arm":"A"}}', '{"experiment":{"arm":"A"}}', 1),
                ('{"messageId":"m2","experiment":{"arm":"B"}}', None, 2),
            ],
            "value STRING, _rescued_data STRING, _contract_version INT",
        ),
    )
    assert {e1, e2} == {
        r["_source_file"] for r in read_table(spark, env.paths.table("bronze", "events")).collect()
    }
