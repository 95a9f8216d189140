"""Probabilistic matching on real Spark + Splink with tiny inline data.

Scoring tests use a model whose m/u probabilities are set by hand, so every expected match
weight follows from the arithmetic in the comments; one test trains a model by EM.
"""

from __future__ import annotations

import csv
import datetime as dt
import json
import math
from dataclasses import replace
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.config import BlockingRule, parse_linkage_config
from cdplake.identity.linkage_settings import settings_dict
from cdplake.identity.probabilistic import (
    EDGE_COLUMNS,
    RECORD_COLUMNS,
    CandidatePairBudgetExceeded,
    LinkageModel,
    blocking_candidates,
    candidate_pair_bound,
    clusters,
    guard_cluster_size,
    load_model,
    person_records,
    save_model,
    score,
    score_incremental,
    score_probabilistic_edges,
    train_model,
)

pytest.importorskip("splink")
pytestmark = pytest.mark.integration

# first_name and email, exact or not; blocking on either being equal.
CFG = parse_linkage_config(
    {
        "blocking_rules": [{"equal": ["first_name"]}, {"equal": ["email"]}],
        "comparisons": [
            {"column": "first_name", "levels": [{"kind": "exact"}]},
            {"column": "email", "levels": [{"kind": "exact"}]},
        ],
        "training": {
            "deterministic_rules": ["l.email = r.email"],
            "deterministic_recall": 0.8,
            "u_max_pairs": 1000,
            "em_rules": [{"equal": ["first_name"]}],
            "em_max_iterations": 3,
        },
        "threshold_match_probability": 0.9,
        "min_match_probability_written": 0.01,
        "max_candidate_pairs": 100,
        "spark": {"num_partitions_on_repartition": 1},
    }
)

# m, u per level (exact, else): first_name 0.9/0.1 and 0.1/0.9 -> Bayes factors 9 and 1/9;
# email 0.8/0.01 and 0.2/0.99 -> 80 and 0.2020...; null levels are neutral (factor 1).
PRIOR = 0.02  # prior odds 0.02 / 0.98 = 1/49
MU = {"first_name": [(0.9, 0.1), (0.1, 0.9)], "email": [(0.8, 0.01), (0.2, 0.99)]}


def hand_model(version: str = "linkage_test") -> LinkageModel:
    settings = settings_dict(CFG)
    settings["probability_two_random_records_match"] = PRIOR
    for comparison in settings["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        for level, (m, u) in zip(levels, MU[comparison["output_column_name"]], strict=True):
            level["m_probability"], level["u_probability"] = m, u
    return LinkageModel(version=version, settings=settings)


def expected(bayes_factor: float) -> tuple[float, float]:
    """(match_weight, match_probability) for a pair with this product of Bayes factors."""
    odds = bayes_factor * PRIOR / (1 - PRIOR)
    return math.log2(odds), odds / (1 + odds)


RECORD_DDL = ", ".join(f"{c} STRING" for c in RECORD_COLUMNS)


def records(spark, rows):
    """Rows of (key, first_name, email) in source `people`."""
    return spark.createDataFrame(
        [(f"people:{k}", "people", k, f, None, e, None, None, None, None) for k, f, e in rows], RECORD_DDL
    )


PEOPLE = [
    ("a1", "Anna", "anna@x.com"),
    ("a2", "Anna", "anna@x.com"),
    ("a3", "Anna", None),
    ("b1", "Ben", "ben@y.com"),
    ("b2", "Benjamin", "ben@y.com"),
    ("c1", "Cara", "cara@z.com"),
]


def edge_rows(run_id: str, version: str = "linkage_test", source: str = "people"):
    both = expected(9 * 80)  # a1-a2: name and email equal: 720 / 49 = 14.69 -> p 0.936
    name_only = expected(9)  # a1-a3, a2-a3: name equal, email null: 9 / 49 -> p 0.155
    email_only = expected(80 / 9)  # b1-b2: email equal, name differs: 8.89 / 49 -> p 0.154
    rows = [("a1", "a2", both), ("a1", "a3", name_only), ("a2", "a3", name_only), ("b1", "b2", email_only)]
    return [(source, left, source, right, w, p, version, run_id) for left, right, (w, p) in rows]


EDGE_DDL = (
    "source_l STRING, record_key_l STRING, source_r STRING, record_key_r STRING, match_weight DOUBLE, "
    "match_probability DOUBLE, model_version STRING, run_id STRING"
)


def test_scoring_with_a_saved_model_gives_the_hand_derived_pairs(spark):
    scored = score(spark, records(spark, PEOPLE), hand_model(), CFG, "run_1")
    # c1 shares nothing, so it is in no candidate pair; 3 Anna pairs + 1 Ben pair.
    assert scored.candidate_pairs == 4
    assert tuple(scored.edges.columns) == EDGE_COLUMNS
    assertDataFrameEqual(scored.edges, spark.createDataFrame(edge_rows("run_1"), EDGE_DDL), rtol=1e-6)


CLUSTER_DDL = "source STRING, record_key STRING, cluster_id STRING"
# PEOPLE clustered at 0.1 with at most 2 records per cluster, split at 0.5 (next test).
GUARDED_CLUSTERS = [
    ("people", "a1", "1:people:a1"),
    ("people", "a2", "1:people:a1"),
    ("people", "a3", "1:people:a3"),
    ("people", "b1", "people:b1"),
    ("people", "b2", "people:b1"),
    ("people", "c1", "people:c1"),
]


def test_over_merge_guard_reclusters_only_the_too_large_clusters(spark):
    # At 0.1 the three Annas are one cluster (a1-a2 p 0.936, a3 joined by two 0.155 pairs)
    # and b1-b2 (p 0.154) another. With at most 2 records per cluster only the Annas are
    # clustered again: at 0.5 they split into a1-a2 and a3 ("1:" = the first stricter cut).
    scored = score(spark, records(spark, PEOPLE), hand_model(), CFG, "run_g")
    got = clusters(scored, 0.1, max_cluster_size=2, split_thresholds=(0.5,))
    expected = spark.createDataFrame(GUARDED_CLUSTERS, CLUSTER_DDL)
    assertDataFrameEqual(got, expected)
    # the same as clustering every record at every threshold, as the guard is defined
    every = [
        scored.linker.clustering.cluster_pairwise_predictions_at_threshold(scored.predictions, t)
        .as_spark_dataframe()
        .select("source", "record_key", F.col("cluster_id").cast("string"))
        for t in (0.1, 0.5)
    ]
    assertDataFrameEqual(guard_cluster_size(every, 2), expected)


def test_cost_guard_refuses_before_scoring_and_names_the_rules(spark):
    # Five Annas: first_name gives C(5,2) = 10 pairs; email adds the two pairs of other
    # names sharing an address (x1-x2, y1-y2): 12 in all, over a budget of 11.
    rows = [(f"n{i}", "Anna", f"anna{i}@x.com") for i in range(5)]
    rows += [
        ("x1", "Xu", "xu@x.com"),
        ("x2", "Xi", "xu@x.com"),
        ("y1", "Yan", "y@y.com"),
        ("y2", "Yo", "y@y.com"),
    ]
    tight = parse_linkage_config({**_raw_cfg(), "max_candidate_pairs": 11})
    with pytest.raises(CandidatePairBudgetExceeded) as err:
        score(spark, records(spark, rows), hand_model(), tight, "run_2")
    text = str(err.value)
    assert "12 candidate pairs" in text and "max_candidate_pairs=11" in text
    assert "10  l.first_name = r.first_name" in text and "2  l.email = r.email" in text


GUARD_ROWS = [(f"n{i}", "Anna", f"anna{i}@x.com") for i in range(5)] + [
    ("x1", "Xu", "xu@x.com"),
    ("x2", "Xi", "xu@x.com"),
    ("y1", "Yan", "y@y.com"),
    ("y2", "Yo", "y@y.com"),
    ("y3", None, "y@y.com"),
]
BY_NAME, BY_EMAIL = BlockingRule(on=("first_name",)), BlockingRule(on=("email",))
BY_NAME_AND_INITIAL = BlockingRule(on=("first_name", "substr(email, 1, 1)"))


def test_candidate_pair_bound_sums_each_rules_key_groups_without_building_pairs(spark):
    people = records(spark, GUARD_ROWS)
    # first_name: 5 Annas -> 10 (y3's null name pairs with no one); email: xu 1, y 3 -> 4;
    # name + initial: the Annas again -> 10, counted twice in the bound
    assert candidate_pair_bound(people, (BY_NAME,)) == 10
    assert candidate_pair_bound(people, (BY_NAME, BY_EMAIL)) == 14
    assert candidate_pair_bound(people, (BY_NAME, BY_EMAIL, BY_NAME_AND_INITIAL)) == 24
    assert candidate_pair_bound(people, (BY_NAME, BlockingRule(sql="l.email = r.email"))) is None


@pytest.mark.parametrize(("budget", "path"), [(30, "bound within budget"), (14, "exact count")])
def test_cost_guard_counts_the_exact_candidate_pairs_on_either_path(spark, budget, path):
    # three rules, 24 pairs by the bound, 14 distinct: with a budget of 30 the bound lets the
    # pairs be built once and counted; with 14 Splink's exact count decides (and passes)
    cfg = replace(CFG, blocking_rules=(BY_NAME, BY_EMAIL, BY_NAME_AND_INITIAL), max_candidate_pairs=budget)
    scored = score(spark, records(spark, GUARD_ROWS), hand_model(), cfg, "run_g")
    assert scored.candidate_pairs == 14, path


def _raw_cfg() -> dict:
    return {
        "blocking_rules": [{"equal": ["first_name"]}, {"equal": ["email"]}],
        "comparisons": [
            {"column": "first_name", "levels": [{"kind": "exact"}]},
            {"column": "email", "levels": [{"kind": "exact"}]},
        ],
        "training": {"deterministic_rules": ["l.email = r.email"], "em_rules": [{"equal": ["first_name"]}]},
    }


def test_person_records_from_silver_shapes(spark):
    crm = spark.createDataFrame(
        [("c1", "Anna", "Smith", "anna@x.com", "+447700900111", "SW1A 1AA", "london", dt.date(1980, 1, 2))],
        "contact_id STRING, first_name STRING, last_name STRING, email STRING, phone STRING, postcode STRING, "
        "city STRING, date_of_birth DATE",
    )
    orders = spark.createDataFrame(
        [
            ("o1", "Smith, Anna", "anna@x.com", None),
            ("o2", "A Smith", None, "+447700900111"),
            ("o3", "Madonna", "", None),
            ("o4", None, None, None),  # nothing to compare: left out of the view
        ],
        "order_id STRING, customer_name STRING, customer_email STRING, customer_phone STRING",
    )
    events = spark.createDataFrame(
        [
            ("m1", "identify", "Anna", "Smith", "anna@x.com", None),
            ("m2", "track", "Anna", "Smith", "anna@x.com", None),
        ],
        "message_id STRING, type STRING, first_name STRING, last_name STRING, email STRING, phone STRING",
    )
    out = person_records({"crm_contacts": crm, "orders": orders, "events": events})
    expected_rows = [
        (
            "crm_contacts:c1",
            "crm_contacts",
            "c1",
            "Anna",
            "Smith",
            "anna@x.com",
            "+447700900111",
            "SW1A 1AA",
            "London",
            "1980-01-02",
        ),
        ("orders:o1", "orders", "o1", "Anna", "Smith", "anna@x.com", None, None, None, None),
        ("orders:o2", "orders", "o2", "A", "Smith", None, "+447700900111", None, None, None),
        ("orders:o3", "orders", "o3", None, "Madonna", None, None, None, None, None),
        ("events:m1", "events", "m1", "Anna", "Smith", "anna@x.com", None, None, None, None),
    ]
    assertDataFrameEqual(out, spark.createDataFrame(expected_rows, RECORD_DDL))


def test_train_save_and_load_a_versioned_model(spark, lake_env):
    rows = [
        (f"p{i}{j}", name, f"{name.lower()}{i}@x.com" if j < 2 else None)
        for i, name in enumerate(["Anna", "Ben", "Cara", "Dan", "Eve", "Finn"])
        for j in range(3)
    ]
    model = train_model(spark, records(spark, rows), CFG, "linkage_v7")
    path = save_model(spark, lake_env.paths, model)
    assert path == f"{lake_env.storage.root}/models/linkage/linkage_v7.json"
    assert (Path(lake_env.storage.root) / "models/linkage/LATEST").read_text() == "linkage_v7\n"
    loaded = load_model(spark, lake_env.paths)
    assert loaded.version == "linkage_v7"
    assert loaded.settings == json.loads(json.dumps(model.settings))
    email_exact = loaded.settings["comparisons"][1]["comparison_levels"][1]
    # estimated, not left at Splink's defaults: u from random pairs, m by EM on first_name
    assert 0 < email_exact["u_probability"] < 0.5 and 0.5 < email_exact["m_probability"] <= 1
    with pytest.raises(FileNotFoundError, match="cdplake-train-linkage-model"):
        load_model(spark, lake_env.paths, "linkage_v8")


def _parameters(settings):
    """The prior and every level's (m, u), and the settings without them."""
    rest = json.loads(json.dumps(settings))
    params = [rest.pop("probability_two_random_records_match")]
    for comparison in rest["comparisons"]:
        for level in comparison["comparison_levels"]:
            params += [level.pop("m_probability", None), level.pop("u_probability", None)]
    return params, rest


def test_training_on_the_driver_gives_the_model_spark_training_gives(spark):
    # 18 records: 153 pairs, fewer than u_max_pairs, so both engines take u from every pair
    # (no random sample) and run the same EM on the same blocked pairs. Two Annas and two
    # Bens give the first_name-blocked EM session non-matching pairs too.
    rows = [
        (f"p{i}{j}", name if j < 2 else name[:-1], f"{name.lower()}{i}@x.com" if j < 2 else None)
        for i, name in enumerate(["Anna", "Ben", "Anna", "Ben", "Cara", "Dan"])
        for j in range(3)
    ]
    people = records(spark, rows)
    on_spark = replace(CFG, training=replace(CFG.training, engine="spark"))
    driver = train_model(spark, people, CFG, "v_driver").settings
    cluster = train_model(spark, people, on_spark, "v_spark").settings
    (driver_params, driver_rest), (cluster_params, cluster_rest) = _parameters(driver), _parameters(cluster)
    assert driver_rest == cluster_rest  # the same Spark SQL settings
    assert driver_rest["sql_dialect"] == "spark"
    # null levels carry no m or u on either engine; every other value agrees
    assert [p is None for p in driver_params] == [p is None for p in cluster_params]
    known = [i for i, p in enumerate(cluster_params) if p is not None]
    # the prior, u of exact and else on both fields, m of both email levels (first_name is
    # the EM session's blocking field, so its m stays unestimated)
    assert len(known) == 1 + 4 + 2
    assert [driver_params[i] for i in known] == pytest.approx([cluster_params[i] for i in known], rel=1e-9)
    assert driver_params[0] != 0.0001  # trained, not Splink's default prior


def write_person_silver(spark, env, orders_rows) -> None:
    crm = spark.createDataFrame(
        [("a1", "Anna", "anna@x.com"), ("b1", "Ben", "ben@y.com"), ("c1", "Cara", "cara@z.com")],
        "contact_id STRING, first_name STRING, email STRING",
    ).selectExpr(
        "*",
        *[f"CAST(NULL AS STRING) AS {c}" for c in ("last_name", "phone", "postcode", "city")],
        "CAST(NULL AS DATE) AS date_of_birth",
    )
    orders = spark.createDataFrame(
        orders_rows, "order_id STRING, customer_name STRING, customer_email STRING, customer_phone STRING"
    )
    for name, df in (("crm_contacts", crm), ("orders", orders)):
        df.write.format("delta").mode("overwrite").save(env.paths.table("silver", name))


ORDERS = [("o2", "Anna Smith", "anna@x.com", None), ("o3", "Benjamin Jones", "ben@y.com", None)]


def test_score_job_writes_the_probabilistic_edges_contract(spark, lake_env):
    write_person_silver(spark, lake_env, ORDERS)
    save_model(spark, lake_env.paths, hand_model("linkage_v1"))
    res = score_probabilistic_edges(spark, lake_env, CFG, "run_3")
    assert (res.model_version, res.records, res.candidate_pairs, res.edges_written, res.links) == (
        "linkage_v1",
        5,
        2,
        2,
        1,
    )
    both, email_only = expected(9 * 80), expected(80 / 9)  # Anna = Anna; Ben != Benjamin
    want = [
        ("crm_contacts", "a1", "orders", "o2", *both, "linkage_v1", "run_3"),
        ("crm_contacts", "b1", "orders", "o3", *email_only, "linkage_v1", "run_3"),
    ]
    got = spark.read.format("delta").load(lake_env.paths.table("identity", "probabilistic_edges"))
    assertDataFrameEqual(got, spark.createDataFrame(want, EDGE_DDL), rtol=1e-6)


def test_link_records_on_a_csv_writes_pairs_and_clusters_then_merges_a_batch(spark, tmp_path):
    from cdplake.identity.record_linking import link_records

    src = tmp_path / "people.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "first_name", "email", "notes"])
        w.writerows([[k, n, e or "", "x"] for k, n, e in PEOPLE])
    model_file = tmp_path / "linkage_csv.json"  # the file name is the version
    model_file.write_text(json.dumps(hand_model("linkage_csv").settings))
    res = link_records(
        spark,
        str(src),
        CFG,
        str(tmp_path / "out"),
        id_column="id",
        model_path=str(model_file),
        run_id="run_4",
    )
    assert (res.records, res.candidate_pairs, res.pairs_written, res.links, res.clusters) == (6, 4, 4, 1, 5)
    pairs = spark.read.format("delta").load(str(tmp_path / "out/pairs"))
    assertDataFrameEqual(
        pairs, spark.createDataFrame(edge_rows("run_4", "linkage_csv", source="people"), EDGE_DDL), rtol=1e-6
    )
    # only a1-a2 is at or above 0.9: one cluster of two, four singletons
    clusters = spark.read.format("delta").load(str(tmp_path / "out/clusters"))
    by_key = {r["record_key"]: r["cluster_id"] for r in clusters.collect()}
    assert sorted(by_key) == ["a1", "a2", "a3", "b1", "b2", "c1"]
    assert by_key["a1"] == by_key["a2"] and len(set(by_key.values())) == 5

    # Incremental: a4 (a fourth Anna, same email) arrives, c1 leaves. Only a4 is scored and
    # only what it links to is re-clustered; the old pairs keep their run id.
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "first_name", "email", "notes"])
        w.writerows([[k, n, e or "", "x"] for k, n, e in [*PEOPLE[:5], ("a4", "Anna", "anna@x.com")]])
    run = dict(id_column="id", model_path=str(model_file), run_id="run_5", incremental=True)
    inc = link_records(spark, str(src), CFG, str(tmp_path / "out"), **run)
    # scope: a4, c1 (gone), a1 and a2 (a4's links at 0.936); a3 (0.155) and Ben are not touched
    assert (inc.mode, inc.batch_records, inc.scope_records) == ("incremental", 1, 4)
    assert (inc.records, inc.candidate_pairs, inc.pairs_written, inc.links, inc.clusters) == (6, 0, 7, 3, 4)
    both, name_only = expected(9 * 80), expected(9)
    new_pairs = [("a1", "a4", both), ("a2", "a4", both), ("a3", "a4", name_only)]
    want = edge_rows("run_4", "linkage_csv") + [
        ("people", a, "people", b, w, p, "linkage_csv", "run_5") for a, b, (w, p) in new_pairs
    ]
    pairs = spark.read.format("delta").load(str(tmp_path / "out/pairs"))
    assertDataFrameEqual(pairs, spark.createDataFrame(want, EDGE_DDL), rtol=1e-6)
    # the clusters a full run gives: {a1, a2, a4} at 0.9, everyone else alone
    clustered = [("a1", "a1"), ("a2", "a1"), ("a4", "a1"), ("a3", "a3"), ("b1", "b1"), ("b2", "b2")]
    assertDataFrameEqual(
        spark.read.format("delta").load(str(tmp_path / "out/clusters")),
        spark.createDataFrame(
            [(k, f"people:{c}", f"people:{c}") for k, c in clustered],
            "record_key STRING, cluster_id STRING, component_id STRING",
        ),
    )
    again = link_records(spark, str(src), CFG, str(tmp_path / "out"), **run)  # nothing new: nothing done
    assert (again.mode, again.batch_records, again.scope_records, again.pairs_written) == (
        "incremental",
        0,
        0,
        7,
    )
    with pytest.raises(ValueError, match="must be delta"):
        link_records(spark, str(src), CFG, str(tmp_path / "out2"), output_fmt="parquet", **run)


def _people_csv(path: Path, rows) -> None:
    with path.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "first_name", "email"])
        w.writerows([[k, n, e or ""] for k, n, e in rows])


def test_an_incremental_run_stopped_half_way_is_finished_by_the_next(spark, tmp_path, monkeypatch):
    """A run that appended a new record's pairs and stopped before its last commit leaves its
    journal; the next run must rewrite those pairs, not append them again."""
    import cdplake.identity.record_linking as linking

    src = tmp_path / "people.csv"
    model_file = tmp_path / "linkage_stop.json"
    model_file.write_text(json.dumps(hand_model("linkage_stop").settings))
    run = dict(id_column="id", model_path=str(model_file))
    outputs = {name: str(tmp_path / name) for name in ("clean", "stopped")}
    _people_csv(src, PEOPLE[:5])
    for out in outputs.values():
        linking.link_records(spark, str(src), CFG, out, run_id="run_1", **run)
    _people_csv(src, [*PEOPLE[:5], ("a4", "Anna", "anna@x.com")])  # a4 is new: the append path
    clean = linking.link_records(
        spark, str(src), CFG, outputs["clean"], run_id="run_2", incremental=True, **run
    )

    def stop(*args, **kwargs):
        raise RuntimeError("killed")

    with monkeypatch.context() as m:  # stops after the pairs are appended, before the clusters
        m.setattr(linking, "update_clusters", stop)
        with pytest.raises(RuntimeError, match="killed"):
            linking.link_records(
                spark, str(src), CFG, outputs["stopped"], run_id="run_2", incremental=True, **run
            )
    assert (tmp_path / "stopped" / linking.PENDING).exists()
    stopped_pairs = spark.read.format("delta").load(outputs["stopped"] + "/pairs")
    assert stopped_pairs.where("record_key_r = 'a4'").count() == 3  # the stopped run's pairs are there
    resumed = linking.link_records(
        spark, str(src), CFG, outputs["stopped"], run_id="run_2", incremental=True, **run
    )
    assert (
        (resumed.batch_records, resumed.pairs_written, resumed.links, resumed.clusters)
        == (
            clean.batch_records,
            clean.pairs_written,
            clean.links,
            clean.clusters,
        )
        == (1, 7, 3, 4)
    )
    for table in ("pairs", "clusters", linking.FINGERPRINTS):
        assertDataFrameEqual(
            spark.read.format("delta").load(f"{outputs['stopped']}/{table}"),
            spark.read.format("delta").load(f"{outputs['clean']}/{table}"),
        )
    assert not (tmp_path / "stopped" / linking.PENDING).exists()
    assert not (tmp_path / "clean" / linking.PENDING).exists()


def test_a_full_run_stopped_half_way_leaves_no_run_to_go_on_from(spark, tmp_path, monkeypatch):
    """A full run that wrote its pairs and stopped leaves tables that do not belong together:
    the next incremental run must run in full, not MERGE into them."""
    import cdplake.identity.record_linking as linking

    src, out = tmp_path / "people.csv", str(tmp_path / "out")
    model_file = tmp_path / "linkage_full.json"
    model_file.write_text(json.dumps(hand_model("linkage_full").settings))
    run = dict(id_column="id", model_path=str(model_file))
    _people_csv(src, PEOPLE[:5])
    linking.link_records(spark, str(src), CFG, out, run_id="run_1", **run)
    state = json.loads((tmp_path / "out" / linking.LAST_RUN).read_text())
    assert state == {
        "model_version": "linkage_full",
        "run_id": "run_1",
        "pairs": 4,
        "links": 1,
        "clusters": 4,
    }

    def stop(*args, **kwargs):
        raise RuntimeError("killed")

    _people_csv(src, PEOPLE)
    with monkeypatch.context() as m:  # stops after the pairs are overwritten
        m.setattr(linking, "clusters", stop)
        with pytest.raises(RuntimeError, match="killed"):
            linking.link_records(spark, str(src), CFG, out, run_id="run_2", **run)
    assert not (tmp_path / "out" / linking.LAST_RUN).exists()
    again = linking.link_records(spark, str(src), CFG, out, run_id="run_3", incremental=True, **run)
    assert (again.mode, again.reason, again.pairs_written, again.links, again.clusters) == (
        "full",
        "no_previous_run",
        4,
        1,
        5,
    )


def test_link_records_refuses_null_and_repeated_ids_before_scoring(spark, tmp_path):
    from cdplake.identity.record_linking import link_records

    src = tmp_path / "people.csv"
    with src.open("w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["id", "first_name", "email"])
        w.writerows([["a1", "Anna", "anna@x.com"], ["a1", "Ann", ""], ["", "Ben", ""], ["b2", "Ben", ""]])
    with pytest.raises(ValueError, match=r"id column 'id' must be unique and non-null: 1 null, 1 repeated"):
        link_records(spark, str(src), CFG, str(tmp_path / "out"), id_column="id")
    assert not (tmp_path / "out").exists()  # nothing written

    # An incremental run checks the ids in the job that finds the batch: refused the same way,
    # before it writes anything.
    good = tmp_path / "good.csv"
    _people_csv(good, PEOPLE[:2])
    model_file = tmp_path / "linkage_ids.json"
    model_file.write_text(json.dumps(hand_model("linkage_ids").settings))
    out = str(tmp_path / "inc")
    link_records(spark, str(good), CFG, out, id_column="id", model_path=str(model_file))
    versions = {
        t: spark.sql(f"DESCRIBE HISTORY delta.`{out}/{t}`").count() for t in ("pairs", "clusters", "records")
    }
    _people_csv(good, [*PEOPLE[:2], ("a1", "Ann", None), ("", "Ben", None), ("", "Bo", None)])
    with pytest.raises(ValueError, match=r"id column 'id' must be unique and non-null: 2 null, 1 repeated"):
        link_records(spark, str(good), CFG, out, id_column="id", model_path=str(model_file), incremental=True)
    assert versions == {
        t: spark.sql(f"DESCRIBE HISTORY delta.`{out}/{t}`").count() for t in ("pairs", "clusters", "records")
    }
    assert not (tmp_path / "inc" / "_incremental_pending.json").exists()


@pytest.mark.parametrize("engine", ["duckdb", "spark"])
def test_incremental_batch_gets_the_pairs_and_weights_of_a_full_run(spark, engine):
    everyone = records(spark, PEOPLE)
    new, existing = everyone.where("record_key = 'a2'"), everyone.where("record_key != 'a2'")
    cfg = replace(CFG, incremental=replace(CFG.incremental, engine=engine))
    inc = score_incremental(spark, existing, new, hand_model(), cfg, "run_5")
    # a2 pairs with a1 (name and email equal) and a3 (name only), keyed and weighted as in
    # the full run; pairs among existing records are not rescored.
    want = [row for row in edge_rows("run_5") if "a2" in (row[1], row[3])]
    assertDataFrameEqual(inc, spark.createDataFrame(want, EDGE_DDL), rtol=1e-6)


# A merged component of three is over a limit of 2 (the guard splits it, reading its links)
# and within a limit of 3 (a batch of new records only joins old components: no scan).
UNGUARDED_CLUSTERS = [("people", k, f"people:{c}") for k, c in [("a1", "a1"), ("a2", "a1"), ("a3", "a1")]]


@pytest.mark.parametrize(
    ("driver_max_records", "given_links", "max_size"),
    [(0, False, 2), (1000, False, 2), (1000, True, 2), (1000, True, 3)],
)
def test_updating_the_clusters_for_a_batch_equals_clustering_everything(
    spark, monkeypatch, driver_max_records, given_links, max_size
):
    import cdplake.identity.cluster_update as cu

    # Before a2 came, Splink clustered {a1, a3} (0.155 >= 0.1), {b1, b2} and {c1}; the pairs
    # now are the full run's (a2's are what incremental scoring gives, test above).
    previous = spark.createDataFrame(
        [
            ("people", k, f"people:{c}")
            for k, c in [("a1", "a1"), ("a3", "a1"), ("b1", "b1"), ("b2", "b1"), ("c1", "c1")]
        ],
        CLUSTER_DDL,
    )
    keys = records(spark, PEOPLE).select("source", "record_key")
    pairs = spark.createDataFrame(edge_rows("run_6"), EDGE_DDL)
    if max_size == 3:  # joined through a2's links alone, the stored pairs are not read again

        def no_scan(*args, **kwargs):
            raise AssertionError("the stored pairs were scanned")

        monkeypatch.setattr(cu, "_links_on", no_scan)
    update = cu.update_clusters(
        # The driver needs each cluster's component: here the cluster itself.
        previous.withColumn("component_id", F.col("cluster_id")) if driver_max_records else previous,
        keys,
        pairs,
        keys.where("record_key = 'a2'"),
        0.1,
        max_cluster_size=max_size,
        split_thresholds=(0.5,),
        driver_max_records=driver_max_records,
        # a2's pairs, as the batch that scored them hands them over; a2 is new, none left
        touched_links=pairs.where("'a2' IN (record_key_l, record_key_r)") if given_links else None,
        only_new=given_links,
    )
    assert update.engine == ("driver" if driver_max_records else "spark")
    # a2 joins {a1, a3}: three records. Over 2, the guard splits them at 0.5 as Splink's full
    # clustering does (the test above); {b1, b2} and {c1} stay outside the scope.
    assert [(r.record_key) for r in update.scope.orderBy("record_key").collect()] == ["a1", "a2", "a3"]
    applied = previous.join(update.scope, ["source", "record_key"], "left_anti").unionByName(
        update.clusters.drop("component_id")
    )
    want = GUARDED_CLUSTERS if max_size == 2 else UNGUARDED_CLUSTERS + GUARDED_CLUSTERS[3:]
    assertDataFrameEqual(applied, spark.createDataFrame(want, CLUSTER_DDL))
    if driver_max_records:  # 3 clusters before; the split makes 4, the plain join keeps 3
        assert update.clusters_added == (1 if max_size == 2 else 0)
    assertDataFrameEqual(
        update.clusters.select("record_key", "component_id"),
        spark.createDataFrame(
            [(k, "people:a1") for k in ("a1", "a2", "a3")], "record_key string, component_id string"
        ),
    )


@pytest.mark.parametrize("driver_max_records", [0, 1000])
def test_a_new_record_linked_to_one_member_joins_its_whole_old_component(spark, driver_max_records):
    from cdplake.identity.cluster_update import update_clusters

    # Old: the chain k1 - k2 - k3 is one component, z1 another. New: n9, linked to k3 alone.
    old = [("k1", "k1"), ("k2", "k1"), ("k3", "k1"), ("z1", "z1")]
    previous = spark.createDataFrame(
        [("people", k, f"people:{c}", f"people:{c}") for k, c in old],
        f"{CLUSTER_DDL}, component_id string",
    )
    keys = spark.createDataFrame(
        [("people", k) for k in ("k1", "k2", "k3", "n9", "z1")], "source string, record_key string"
    )
    pair = (
        "source_l string, record_key_l string, source_r string, record_key_r string, match_probability double"
    )
    pairs = spark.createDataFrame(
        [
            ("people", a, "people", b, p)
            for a, b, p in [("k1", "k2", 0.95), ("k2", "k3", 0.97), ("k3", "n9", 0.96)]
        ],
        pair,
    )
    update = update_clusters(
        previous if driver_max_records else previous.drop("component_id"),
        keys,
        pairs,
        keys.where("record_key = 'n9'"),
        0.9,
        max_cluster_size=10,
        split_thresholds=(0.99,),
        driver_max_records=driver_max_records,
        touched_links=pairs.where("record_key_r = 'n9'") if driver_max_records else None,
        only_new=bool(driver_max_records),
    )
    assert update.engine == ("driver" if driver_max_records else "spark")
    assertDataFrameEqual(
        update.clusters,
        spark.createDataFrame(
            [("people", k, "people:k1", "people:k1") for k in ("k1", "k2", "k3", "n9")],
            f"{CLUSTER_DDL}, component_id string",
        ),
    )
    assert update.clusters_added == (0 if driver_max_records else None)


def test_blocking_candidates_are_the_existing_records_sharing_a_key_with_the_batch(spark):
    people = records(spark, GUARD_ROWS)
    new = people.where("record_key IN ('n0', 'y3')")
    existing = people.where("record_key NOT IN ('n0', 'y3')")
    # n0 (Anna, anna0@x.com) shares its name with the four other Annas and its email with no
    # one; y3 (no name, y@y.com) shares its email with y1 and y2: a null name pairs with nothing.
    picked = blocking_candidates(existing, new, (BY_NAME, BY_EMAIL))
    assertDataFrameEqual(picked, people.where("record_key IN ('n1', 'n2', 'n3', 'n4', 'y1', 'y2')"))
    assert blocking_candidates(existing, new, (BlockingRule(sql="l.email = r.email"),)) is None


# Term frequencies and fuzzy levels: first_name exact (tf adjusted), Jaro-Winkler >= 0.9,
# >= 0.8, else; email exact, else. Blocking on the email or on the first two letters of the name.
TF_CFG = parse_linkage_config(
    {
        "blocking_rules": [{"equal": ["email"]}, {"equal": ["substr(first_name, 1, 2)"]}],
        "comparisons": [
            {
                "column": "first_name",
                "levels": [
                    {"kind": "exact", "tf": True},
                    {"kind": "jaro_winkler", "threshold": 0.9},
                    {"kind": "jaro_winkler", "threshold": 0.8},
                ],
            },
            {"column": "email", "levels": [{"kind": "exact"}]},
        ],
        "training": {"deterministic_rules": ["l.email = r.email"], "em_rules": [{"equal": ["first_name"]}]},
        "min_match_probability_written": 0.0,
    }
)
TF_PEOPLE = [
    ("n1", "Anna", "anna@x.com"),
    ("n2", "Anna", "anna.b@x.com"),
    ("n3", "Anne", "anna@x.com"),
    ("n4", "Annabel", None),
    ("n5", "Anna", None),
    ("n6", "Ben", "ben@y.com"),
    ("n7", "Benn", "ben@y.com"),
    ("n8", None, "ben@y.com"),
    ("n9", "Cara", "cara@z.com"),
    # Jaro-Winkler 0.7994 on Spark, 0.826 with DuckDB's built-in: the driver must agree
    ("n10", "Carole", "carole@z.com"),
    ("n11", "Cameron", None),
]


def tf_model() -> LinkageModel:
    settings = settings_dict(TF_CFG)
    settings["probability_two_random_records_match"] = 0.05
    mu = {
        "first_name": [(0.6, 0.05), (0.2, 0.1), (0.1, 0.15), (0.1, 0.7)],
        "email": [(0.9, 0.02), (0.1, 0.98)],
    }
    for comparison in settings["comparisons"]:
        levels = [lv for lv in comparison["comparison_levels"] if not lv.get("is_null_level")]
        for level, (m, u) in zip(levels, mu[comparison["output_column_name"]], strict=True):
            level["m_probability"], level["u_probability"] = m, u
    return LinkageModel(version="linkage_tf", settings=settings)


@pytest.mark.parametrize("driver_max_records", [1000, 2])
def test_batch_scored_on_the_driver_weighs_pairs_as_a_full_spark_run(spark, caplog, driver_max_records):
    # The batch (n1, n3, n7, n10) against the rest: every pair the full run scores that touches
    # the batch, with the same weight, term frequencies of "Anna" (3 of 8 names) included.
    # With room for 2 records on the driver the Spark path scores it, and says so.
    cfg = replace(TF_CFG, incremental=replace(TF_CFG.incremental, driver_max_records=driver_max_records))
    everyone = records(spark, TF_PEOPLE)
    in_batch = "record_key IN ('n1', 'n3', 'n7', 'n10')"
    full = score(spark, everyone, tf_model(), cfg, "run_t").edges
    touching = full.where(
        in_batch.replace("record_key", "record_key_l")
        + " OR "
        + in_batch.replace("record_key", "record_key_r")
    )
    with caplog.at_level("INFO", logger="cdplake.identity.probabilistic"):
        inc = score_incremental(
            spark, everyone.where(f"NOT ({in_batch})"), everyone.where(in_batch), tf_model(), cfg, "run_t"
        )
    # Anna's group (n1..n5: 10 pairs, 7 touch n1 or n3), Ben's email (n7-n6, n7-n8) and
    # "Ca" (n10-n9, n10-n11)
    assert touching.count() == 11
    carole_cameron = touching.where("record_key_l = 'n10' AND record_key_r = 'n11'")
    assert carole_cameron.count() == 1
    assertDataFrameEqual(inc, touching, rtol=1e-9)
    handed_over = [r.getMessage() for r in caplog.records if "scoring the batch on Spark" in r.getMessage()]
    assert handed_over == (
        ["scoring the batch on Spark: more than 2 records (batch and candidates)"]
        if driver_max_records == 2
        else []
    )


def test_driver_jaro_winkler_equals_the_spark_udf(spark):
    from cdplake.identity.driver_sql import jaro_winkler
    from cdplake.identity.probabilistic import splink_api

    splink_api(spark, CFG)  # registers the jar's UDFs on the session
    names = [
        "Anna", "Anne", "Annabel", "Carole", "Cameron", "Carl", "Claire", "MARTHA", "MARHTA",
        "Jon", "John", "Jonathan", "Smith", "Smyth", "Schmidt", "O'Neil", "Oneill", "José",
        "Jose", "Zoë", "Li", "Lee", "", "a", "Christopher", "Kristofer", "Dorothy", "Anthony",
    ]  # fmt: skip
    pairs = spark.createDataFrame([(a, b) for a in names for b in names], "a STRING, b STRING")
    got = pairs.selectExpr("a", "b", "jaro_winkler(a, b) AS jw").collect()
    assert len(got) == len(names) ** 2
    differ = [
        (r.a, r.b, r.jw, jaro_winkler(r.a, r.b)) for r in got if abs(r.jw - jaro_winkler(r.a, r.b)) > 1e-12
    ]
    assert differ == []


def test_incremental_scoring_merges_only_the_pairs_of_new_changed_and_vanished_records(spark, lake_env):
    write_person_silver(spark, lake_env, ORDERS)
    save_model(spark, lake_env.paths, hand_model("linkage_v1"))
    first = score_probabilistic_edges(spark, lake_env, CFG, "run_1", incremental=True)
    assert (first.mode, first.records) == ("full", 5)  # nothing was scored before
    # o3 (Ben's order) is gone, Cara orders as o4
    write_person_silver(spark, lake_env, [ORDERS[0], ("o4", "Cara Lee", "cara@z.com", None)])

    res = score_probabilistic_edges(spark, lake_env, CFG, "run_2", incremental=True)

    assert (res.mode, res.records, res.edges_written, res.links) == ("incremental", 1, 2, 2)
    both = expected(9 * 80)  # first name and email equal
    got = spark.read.format("delta").load(lake_env.paths.table("identity", "probabilistic_edges"))
    want = [
        ("crm_contacts", "a1", "orders", "o2", *both, "linkage_v1", "run_1"),  # untouched, not rescored
        ("crm_contacts", "c1", "orders", "o4", *both, "linkage_v1", "run_2"),
    ]
    assertDataFrameEqual(got, spark.createDataFrame(want, EDGE_DDL), rtol=1e-6)
    scored = spark.read.format("delta").load(lake_env.paths.table("identity", "scored_records"))
    assert sorted(r["record_key"] for r in scored.collect()) == ["a1", "b1", "c1", "o2", "o4"]
    # the same pairs a full run finds
    full = score_probabilistic_edges(spark, lake_env, CFG, "run_3")
    assert full.mode == "full"
    rescored = spark.read.format("delta").load(lake_env.paths.table("identity", "probabilistic_edges"))
    assertDataFrameEqual(rescored.drop("run_id"), got.drop("run_id"), rtol=1e-6)
