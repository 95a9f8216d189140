"""The whole lake on the embedded default, checked against the generator's ground truth.

The lake is built the way a new user first builds it: by running the lake-tour notebook
(``notebooks/01_lake_tour.py``, whose first cell calls ``run_pipeline`` exactly as
``make run`` does) top to bottom in this process. A second ``run_pipeline`` with nothing new
follows. One build serves the notebook's own checks and the pipeline's.
"""

from __future__ import annotations

import contextlib
import io
import os
import runpy
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdplake.config import EnvConfig, load_env
from cdplake.pipeline import PipelineSummary, run_pipeline

REPO = Path(__file__).resolve().parents[2]
NOTEBOOK = REPO / "notebooks" / "01_lake_tour.py"
# silver table and record key per landing source
SILVER = {
    "events": ("events", "message_id"),
    "email": ("email_events", "event_id"),
    "crm": ("crm_contacts", "contact_id"),
    "orders": ("orders", "order_id"),
}
UNUSABLE = ("malformed_json", "missing_key", "bad_timestamp")

pytestmark = pytest.mark.integration


@dataclass(frozen=True)
class Lake:
    env: EnvConfig
    first: PipelineSummary
    second: PipelineSummary
    notebook: dict[str, Any]  # the notebook's global namespace after its last cell
    printed: str  # what the notebook printed


@pytest.fixture(scope="module")
def built(spark, tmp_path_factory) -> Lake:
    root = tmp_path_factory.mktemp("pipeline") / "lake"
    widgets = {"CDPLAKE_WIDGET_LAKE_ROOT": str(root), "CDPLAKE_WIDGET_CUSTOMERS": "60"}
    printed = io.StringIO()
    with pytest.MonkeyPatch.context() as mp, contextlib.redirect_stdout(printed):
        for name, value in widgets.items():
            mp.setenv(name, value)
        mp.delenv("CDPLAKE_CONF_DIR", raising=False)
        # The notebook's build_session joins the test run's session (getOrCreate).
        namespace = runpy.run_path(str(NOTEBOOK), run_name="__main__")
    env = load_env(
        "local",
        conf_dir=REPO / "conf",
        environ={**os.environ, "CDPLAKE__STORAGE__ROOT": str(root), "CDPLAKE__DEMO__CUSTOMERS": "60"},
    )
    first = namespace["summary"]
    second = run_pipeline(spark, env, generate=False, run_id="run_2", as_of=first.as_of)
    return Lake(env, first, second, namespace, printed.getvalue())


@pytest.fixture(scope="module")
def lake(built: Lake) -> tuple[EnvConfig, PipelineSummary, PipelineSummary]:
    return built.env, built.first, built.second


def test_lake_tour_notebook_runs_locally(spark, built):
    assert NOTEBOOK.read_text().startswith("# Databricks notebook source\n")
    namespace = built.notebook
    assert namespace["spark"] is spark
    assert namespace["summary"].lake_root == built.env.storage.root
    assert "customers resolved:" in built.printed
    # the change-feed cell saw the inserts the first membership write made
    changes = namespace["changes"]
    assert changes.where("_change_type = 'insert'").count() == namespace["membership"].count() > 0


def _table(spark, env: EnvConfig, layer: str, name: str) -> DataFrame:
    return spark.read.format("delta").load(env.paths.table(layer, name))


def _truth(spark, env: EnvConfig) -> DataFrame:
    return (
        spark.read.option("header", True)
        .csv(env.paths.ground_truth() + "/records.csv")
        .withColumn("copies", F.col("copies").cast("int"))
        .fillna({"defect": ""})
    )


def test_every_landed_line_is_in_bronze(spark, lake):
    env, first, _ = lake
    truth = _truth(spark, env)
    landed = {
        r["source"]: r["lines"] for r in truth.groupBy("source").agg(F.sum("copies").alias("lines")).collect()
    }
    bronze = {source: first.table_rows[("bronze", source)] for source in SILVER}
    assert bronze == landed


def test_every_clean_record_reaches_silver_once_and_unusable_ones_never(spark, lake):
    env, _, _ = lake
    truth = _truth(spark, env)
    for source, (table, key) in SILVER.items():
        silver = _table(spark, env, "silver", table)
        assert silver.count() == silver.select(key).distinct().count(), f"{table} has duplicate keys"
        keys = silver.select(F.col(key).alias("record_key"))
        src = truth.where(F.col("source") == source)
        clean_missing = src.where("defect = ''").join(keys, "record_key", "left_anti")
        assert clean_missing.count() == 0, f"clean {source} records missing from silver"
        if source != "crm":  # a CRM contact's other exported versions may be clean
            leaked = src.where(F.col("defect").isin(*UNUSABLE)).join(keys, "record_key")
            assert leaked.count() == 0, f"unusable {source} records reached silver"


def test_bad_records_are_quarantined_with_reasons(spark, lake):
    env, first, _ = lake
    truth = _truth(spark, env)
    for source in SILVER:
        unusable = truth.where((F.col("source") == source) & F.col("defect").isin(*UNUSABLE)).count()
        quarantine = _table(spark, env, "quarantine", source)
        assert quarantine.count() >= unusable
        assert quarantine.where(F.size("reasons") == 0).count() == 0
    assert sum(sum(r.values()) for r in first.quarantine_reasons.values()) > 0


def test_identity_links_each_record_once_and_does_not_mix_people(spark, lake):
    env, first, _ = lake
    records = _table(spark, env, "identity", "record_customer")
    assert records.count() == records.select("source", "record_key").distinct().count()
    truth = _truth(spark, env).select("source", "record_key", "person_id")
    linked = records.join(truth, ["source", "record_key"])
    # Every silver record has a customer (CRM contacts count once per contact id).
    silver_records = sum(_table(spark, env, "silver", t).count() for t, _ in SILVER.values())
    assert records.count() == silver_records
    # Purity: the share of records whose customer's dominant true person is their own person.
    per_pair = linked.groupBy("customer_id", "person_id").count()
    dominant = per_pair.groupBy("customer_id").agg(F.max("count").alias("dominant"))
    purity = dominant.agg(F.sum("dominant")).first()[0] / linked.count()
    assert purity >= 0.97, f"deterministic links mixed people: purity {purity:.3f}"
    assert (
        first.customers
        == _table(spark, env, "identity", "customer_map").select("customer_id").distinct().count()
    )


def test_gold_has_one_profile_per_customer_and_segment_sizes_match(spark, lake):
    env, first, _ = lake
    profile = _table(spark, env, "gold", "customer_profile")
    assert profile.count() == profile.select("customer_id").distinct().count() == first.customers
    members = _table(spark, env, "gold", "segment_membership").where("is_member")
    sizes = {r["segment_id"]: r["count"] for r in members.groupBy("segment_id").count().collect()}
    assert {k: v for k, v in first.segment_sizes.items() if v} == sizes
    assert set(first.segment_sizes) >= {"recent_purchasers", "cart_abandoners"}
    assert first.segment_sizes["recent_purchasers"] > 0


def test_second_run_with_nothing_new_changes_nothing(spark, lake):
    env, first, second = lake
    steps = {s.name: s.rows for s in second.steps}
    assert steps["bronze"] == 0
    assert steps["silver"] == 0
    unchanged = {k: v for k, v in first.table_rows.items() if k[1] != "segment_summary"}
    assert {k: v for k, v in second.table_rows.items() if k[1] != "segment_summary"} == unchanged
    assert second.segment_sizes == first.segment_sizes


def test_the_demo_run_trains_a_linkage_model_then_runs_only_score_what_is_new(spark, lake):
    env, first, second = lake
    linkage = {s.name: s for s in first.steps}["linkage"]
    assert linkage.detail.startswith("trained linkage_"), linkage.detail
    assert "; full, model linkage_" in linkage.detail
    scored = _table(spark, env, "identity", "probabilistic_edges")
    assert linkage.rows == _table(spark, env, "identity", "scored_records").count() > 0
    assert first.table_rows[("identity", "probabilistic_edges")] == scored.count() > 0
    # the identity step took the links among them
    links = _table(spark, env, "identity", "customer_links").where("link_type = 'probabilistic'")
    assert links.count() > 0
    again = {s.name: s for s in second.steps}["linkage"]
    assert (again.rows, again.detail.split(",")[0]) == (0, "incremental")


def test_tables_that_gain_rows_every_run_leave_compaction_to_cdplake(spark, lake):
    # Delta's auto compaction is off on them (it would compact after each process's first
    # write); io.delta.compact_now_and_then compacts them every COMPACT_EVERY commits, and
    # two runs are far fewer commits than that.
    env, _, _ = lake
    grown = [
        ("identity", "identity_changes"),
        ("identity", "customer_id_aliases"),
        ("identity", "resolve_runs"),
        ("quality", "dq_results"),
        ("gold", "segment_summary"),
    ]
    seen = {}
    for layer, name in grown:
        path = env.paths.table(layer, name)
        detail = spark.sql(f"DESCRIBE DETAIL delta.`{path}`").first()
        operations = {r["operation"] for r in spark.sql(f"DESCRIBE HISTORY delta.`{path}`").collect()}
        seen[name] = (detail["properties"].get("delta.autoOptimize.autoCompact"), "OPTIMIZE" in operations)
    assert seen == {name: ("false", False) for _, name in grown}


# Keep last: it erases a person from the shared lake, then runs the pipeline once more.
def test_a_person_is_exported_then_erased_everywhere_and_the_next_run_goes_on(spark, lake, tmp_path):
    import hashlib
    import json

    from cdplake.privacy.subject import (
        SubjectNotFound,
        erase_subject,
        export_subject,
        find_subject,
        subject_rows,
    )

    env, first, _ = lake
    # A customer known by an email who also bought something (rows in most layers).
    emails = _table(spark, env, "identity", "customer_map").where("id_type = 'email'")
    buyers = _table(spark, env, "identity", "record_customer").where("source = 'orders'")
    chosen = emails.join(buyers, "customer_id").orderBy("customer_id", "id_value").first()
    email, customer = chosen["id_value"], chosen["customer_id"]
    with pytest.raises(ValueError, match="exactly one"):
        find_subject(spark, env, email=email, customer_id=customer)

    subject = find_subject(spark, env, email=f"  {email.upper()} ")  # normalised as silver does
    assert customer in subject.customer_ids and subject.request == f"email:{email}"
    records = _table(spark, env, "identity", "record_customer").where(
        F.col("customer_id").isin(sorted(subject.customer_ids))
    )
    exported = export_subject(spark, env, subject, str(tmp_path / "export"))
    # Silver rows are the person's records, counted here from the identity tables alone.
    for source, table, key in [
        ("orders", "orders", "order_id"),
        ("events", "events", "message_id"),
        ("email_events", "email_events", "event_id"),
    ]:
        keys = records.where(F.col("source") == source).select(F.col("record_key").alias(key))
        assert exported[f"silver/{table}"] == _table(spark, env, "silver", table).join(keys, key).count()
    assert exported["gold/customer_profile"] == len(subject.customer_ids - {None}) >= 1
    assert exported["bronze/orders"] >= exported["silver/orders"] > 0
    manifest = json.loads((tmp_path / "export" / "manifest.json").read_text())
    assert manifest["rows"] == exported and manifest["customer_ids"] == sorted(subject.customer_ids)
    profile_rows = spark.read.json(str(tmp_path / "export" / "gold" / "customer_profile"))
    assert {r["customer_id"] for r in profile_rows.collect()} <= subject.customer_ids

    erased = erase_subject(spark, env, subject)
    assert erased == exported  # every row exported was deleted, nothing else
    assert all(rows.count() == 0 for rows in subject_rows(spark, env, subject).values())
    with pytest.raises(SubjectNotFound):
        find_subject(spark, env, email=email)
    log = _table(spark, env, "privacy", "erasure_log").collect()
    assert [r["request_hash"] for r in log] == [hashlib.sha256(f"email:{email}".encode()).hexdigest()]
    assert dict(log[0]["rows_deleted"]) == erased and email not in str(log[0])

    # The streams skip the deletes; the next run goes on and the person stays gone.
    third = run_pipeline(spark, env, generate=False, run_id="run_3", as_of=first.as_of)
    assert {s.name: s.rows for s in third.steps}["silver"] == 0
    for layer, table in [("bronze", "orders"), ("silver", "orders"), ("gold", "customer_profile")]:
        text = F.lower(F.to_json(F.struct("*")))
        assert _table(spark, env, layer, table).where(F.instr(text, email) > 0).count() == 0
    profiles = _table(spark, env, "gold", "customer_profile")
    assert profiles.where(F.col("customer_id").isin(sorted(subject.customer_ids))).count() == 0
