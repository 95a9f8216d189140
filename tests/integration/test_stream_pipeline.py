"""The streaming pipeline on tiny demo data, and both consumers over what it wrote.

Two waves of seeded files, one availableNow cycle after each (the session's
``two_wave_stream`` lake, also the crash test's reference). The second cycle recomputes
only touched customers; a full ``build_gold`` at the same ``as_of`` afterwards must find
nothing to change, which is what "incremental equals full" means here.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from lake_conf import STREAM_AS_OF as AS_OF
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.consumers import OutboxPaths, export_segments, run_outbox
from cdplake.segments import build_gold
from cdplake.streaming import progress_path, run_stream_pipeline

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def streamed(spark, two_wave_stream):
    """The shared two-wave lake (conftest.py), plus a third run with nothing new landed."""
    env = two_wave_stream.env
    # nothing new landed: the third run commits nothing
    third = run_stream_pipeline(spark, env, trigger="availableNow", as_of=AS_OF)
    return env, [*two_wave_stream.results, *third]


def gold(spark, env, name, version=None):
    reader = spark.read.format("delta")
    if version is not None:
        reader = reader.option("versionAsOf", version)
    return reader.load(env.paths.table("gold", name))


def test_cycles_and_progress(spark, streamed):
    env, results = streamed
    assert [(r.cycle_id, r.committed, r.full_rebuild) for r in results] == [
        (1, True, True),
        (2, True, False),
        (3, False, False),
    ]
    first, second = results[0], results[1]
    # cycle 2 recomputed only customers touched by wave 2, fewer than the lake holds
    customers = gold(spark, env, "customer_profile").count()
    assert 0 < second.touched < customers
    progress = spark.read.format("delta").load(progress_path(env))
    assert [r["cycle_id"] for r in progress.orderBy("cycle_id").collect()] == [1, 2]
    assert first.touched == progress.where("cycle_id = 1").first()["touched_customers"]


def test_incremental_gold_equals_a_full_build(spark, streamed):
    from delta.tables import DeltaTable

    env, _ = streamed
    membership_version = DeltaTable.forPath(spark, env.paths.table("gold", "segment_membership")).history(1)
    before_version = membership_version.first()["version"]
    profile_before = gold(spark, env, "customer_profile").drop("run_id").localCheckpoint()
    membership_before = gold(spark, env, "segment_membership").localCheckpoint()
    history_before = gold(spark, env, "customer_profile_history").localCheckpoint()
    assert history_before.where("is_current").count() == profile_before.count()

    build_gold(spark, env, "full-check", AS_OF)

    assertDataFrameEqual(gold(spark, env, "customer_profile").drop("run_id"), profile_before)
    # the full build's history MERGE found every version as the cycles left it
    assertDataFrameEqual(gold(spark, env, "customer_profile_history"), history_before)
    # the full MERGE opened and closed nothing: every stay is exactly as the stream left it
    assertDataFrameEqual(gold(spark, env, "segment_membership"), membership_before)
    assert gold(spark, env, "segment_membership", before_version).count() == membership_before.count()


def test_outbox_has_every_entry_and_exit_once(spark, streamed):
    env, _ = streamed
    paths = OutboxPaths.of(env)
    run_outbox(spark, env, "availableNow")
    outbox = spark.read.format("delta").load(paths.table).localCheckpoint()
    stays = gold(spark, env, "segment_membership")
    expected = stays.select(
        F.lit("entered").alias("event_type"),
        "segment_id",
        "customer_id",
        F.col("entered_at").alias("occurred_at"),
    ).unionByName(
        stays.where(~F.col("is_member")).select(
            F.lit("exited").alias("event_type"),
            "segment_id",
            "customer_id",
            F.col("exited_at").alias("occurred_at"),
        )
    )
    assert expected.count() > 0
    assertDataFrameEqual(outbox.select("event_type", "segment_id", "customer_id", "occurred_at"), expected)

    # replay from a reset checkpoint: the whole feed again, nothing added (MERGE on event_id)
    import shutil

    shutil.rmtree(paths.checkpoint)
    run_outbox(spark, env, "availableNow")
    assertDataFrameEqual(
        spark.read.format("delta").load(paths.table).drop("published_at"), outbox.drop("published_at")
    )

    lines = [
        json.loads(line)
        for f in Path(paths.json_dir).glob("batch=*/part-*.json")
        for line in f.read_text().splitlines()
    ]
    assert {(e["event_type"], e["segment_id"], e["customer_id"]) for e in lines} == {
        (r["event_type"], r["segment_id"], r["customer_id"]) for r in expected.collect()
    }


def test_export_writes_one_file_per_segment_with_consented_members(spark, streamed, tmp_path):
    env, _ = streamed
    out = tmp_path / "exports"
    results = export_segments(spark, env, str(out))
    # every segment of conf/segments.yaml gets its files, empty ones too
    assert sorted(r.segment_id for r in results) == [
        "browsing_now",
        "cart_abandoners",
        "frequent_browsers",
        "highly_engaged",
        "lapsing_customers",
        "recent_purchasers",
        "vip_rfm",
        "win_back",
    ]
    assert sorted(p.name for p in out.iterdir()) == sorted(
        f"{r.segment_id}.{ext}" for r in results for ext in ("csv", "jsonl")
    )
    profile = gold(spark, env, "customer_profile")
    expected = (
        gold(spark, env, "segment_membership")
        .where("is_member")
        .join(profile.where("can_email_marketing"), "customer_id")
        .select("email", "first_name", "customer_id", "segment_id", "entered_at")
    )
    assert expected.count() > 0
    schema = "email STRING, first_name STRING, customer_id STRING, segment_id STRING, entered_at TIMESTAMP"
    from_csv = (
        spark.read.schema(schema)
        .option("header", True)
        .csv([str(out / f"{r.segment_id}.csv") for r in results])
    )
    assertDataFrameEqual(from_csv, expected)
    from_json = spark.read.schema(schema).json([str(out / f"{r.segment_id}.jsonl") for r in results])
    assertDataFrameEqual(from_json, expected)
    assert sum(r.rows for r in results) == expected.count()


def test_write_single_file_leaves_one_plain_file_even_when_empty(spark, tmp_path):
    from cdplake.consumers.export import write_single_file

    schema = "email STRING, first_name STRING"
    rows = spark.createDataFrame([("a@x.com", "Ann"), ("b@y.com", None)], schema).repartition(3)
    write_single_file(rows, "csv", str(tmp_path / "s.csv"))
    write_single_file(rows.limit(0), "csv", str(tmp_path / "empty.csv"))
    write_single_file(rows.limit(0), "json", str(tmp_path / "empty.jsonl"))
    # nothing else in the folder: no staging folder, no part files, no hidden .crc files
    assert sorted(p.name for p in tmp_path.iterdir()) == ["empty.csv", "empty.jsonl", "s.csv"]
    assert sorted((tmp_path / "s.csv").read_text().splitlines()) == [
        "a@x.com,Ann",
        "b@y.com,",
        "email,first_name",
    ]
    assert (tmp_path / "empty.csv").read_text() == "email,first_name\n"
    assert (tmp_path / "empty.jsonl").read_text() == ""


def test_cycles_resolve_identity_incrementally_as_a_full_resolve_would(spark, streamed):
    """Last in the module: it re-resolves the shared lake in full (same contents, new versions)."""
    from cdplake.identity import resolve_identities
    from cdplake.identity.resolve import IDENTITY_OUTPUTS

    env, _ = streamed
    runs = spark.read.format("delta").load(env.paths.table("identity", "resolve_runs")).orderBy("resolved_at")
    first, second = runs.collect()
    assert (first["mode"], first["reason"]) == ("full", "no_previous_run")
    # wave 2 brings new records of known people and new people: they and what they link to
    # are resolved again (most of this tiny lake; stream_test_conf lets the scope be that big)
    assert (second["mode"], second["reason"]) == ("incremental", "incremental")
    assert 0 < second["changed_records"] <= second["scope_records"] <= second["records"]

    def tables():
        return {
            name: spark.read.format("delta")
            .load(env.paths.table("identity", name))
            .drop("run_id")
            .localCheckpoint()
            for name in IDENTITY_OUTPUTS
        }

    incremental = tables()
    result = resolve_identities(spark, env, "full-check")
    assert (result.mode, result.id_changes) == ("full", {})
    full = tables()
    for name in IDENTITY_OUTPUTS:
        assertDataFrameEqual(full[name], incremental[name])
