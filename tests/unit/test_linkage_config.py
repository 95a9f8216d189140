"""conf/linkage.yaml -> frozen config -> Splink settings, and the cost guard's verdict."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cdplake.config import (
    BlockingRule,
    ComparisonLevel,
    ConfigError,
    load_linkage_config,
    parse_linkage_config,
)
from cdplake.identity.probabilistic import CandidatePairBudgetExceeded, PairCount, check_budget

CONF = Path(__file__).resolve().parents[2] / "conf"

MINIMAL = {
    "blocking_rules": [{"equal": ["last_name", "substr(first_name, 1, 1)"]}, {"sql": "l.email = r.email"}],
    "comparisons": [
        {
            "column": "first_name",
            "levels": [{"kind": "exact", "tf": True}, {"kind": "jaro_winkler", "threshold": 0.9}],
        },
        {"column": "last_name", "levels": [{"kind": "exact"}]},
        {"column": "email", "levels": [{"kind": "exact"}, {"kind": "regex", "pattern": "^[^@]+"}]},
        {
            "column": "dob",
            "valid_pattern": "^[0-9]{4}-",
            "levels": [{"kind": "damerau_levenshtein", "threshold": 1}, {"kind": "prefix", "length": 7}],
        },
    ],
    "training": {
        "deterministic_rules": ["l.email = r.email"],
        "deterministic_recall": 0.8,
        "em_rules": [{"equal": ["dob"]}],
    },
    "max_candidate_pairs": 1000,
}


def test_shipped_linkage_yaml_parses():
    cfg = load_linkage_config(CONF)
    assert cfg.columns == ("first_name", "last_name", "email", "phone", "date_of_birth", "postcode", "city")
    assert cfg.blocking_rules[0] == BlockingRule(on=("last_name", "substr(first_name, 1, 1)"))
    assert cfg.comparisons[0].levels[0] == ComparisonLevel(kind="exact", tf=True)
    assert cfg.training.em_rules == (
        BlockingRule(on=("date_of_birth",)),
        BlockingRule(on=("postcode",)),
        BlockingRule(on=("email",)),
    )


def test_minimal_config_fills_defaults():
    cfg = parse_linkage_config(MINIMAL)
    assert cfg.max_candidate_pairs == 1000
    assert cfg.threshold_match_probability == 0.9
    assert (cfg.max_cluster_size, cfg.split_thresholds) == (0, (0.99, 0.999, 0.9999))
    assert cfg.training.u_max_pairs == 1_000_000
    assert (cfg.training.engine, cfg.training.driver_max_records) == ("duckdb", 1_000_000)
    assert (cfg.incremental.engine, cfg.incremental.driver_max_records) == ("duckdb", 200_000)
    assert cfg.incremental.cluster_driver_max == 100_000
    assert (
        parse_linkage_config(_with(incremental={"cluster_driver_max": 0})).incremental.cluster_driver_max == 0
    )
    assert cfg.comparisons[3].valid_pattern == "^[0-9]{4}-"
    assert cfg.comparisons[3].levels == (
        ComparisonLevel(kind="damerau_levenshtein", threshold=1.0),
        ComparisonLevel(kind="prefix", length=7),
    )
    assert [r.describe() for r in cfg.blocking_rules] == [
        "l.last_name = r.last_name and substr(first_name, 1, 1) equal",
        "l.email = r.email",
    ]


def _with(**changes):
    return {**MINIMAL, **changes}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (_with(colour="red"), "unknown key"),
        (_with(blocking_rules=[{"on": ["email"]}]), "unknown key"),
        (_with(blocking_rules=[{"equal": ["email"], "sql": "l.a = r.a"}]), "exactly one"),
        (_with(blocking_rules=[{"equal": ["nickname"]}]), "no comparison reads"),
        (_with(comparisons=[{"column": "email", "levels": [{"kind": "soundex"}]}]), "kind must be one of"),
        (_with(comparisons=[{"column": "email", "levels": [{"kind": "jaro_winkler"}]}]), "needs `threshold`"),
        (
            _with(comparisons=[{"column": "email", "levels": [{"kind": "jaro_winkler", "threshold": 2}]}]),
            r"\[0.0, 1.0\]",
        ),
        (
            _with(
                comparisons=[
                    {"column": "email", "levels": [{"kind": "levenshtein", "threshold": 1, "tf": True}]}
                ]
            ),
            "exact levels only",
        ),
        (
            _with(comparisons=[{"column": "email", "levels": [{"kind": "regex", "pattern": "(["}]}]),
            "not a valid regex",
        ),
        (_with(comparisons=[{"column": "e mail", "levels": [{"kind": "exact"}]}]), "plain column name"),
        (_with(max_candidate_pairs=0), "positive integer"),
        (
            _with(training={**MINIMAL["training"], "engine": "pandas"}),
            "engine must be one of duckdb, spark, got 'pandas'",
        ),
        (
            _with(incremental={"engine": "polars"}),
            "incremental.engine must be one of duckdb, spark, got 'polars'",
        ),
        (_with(incremental={"driver_max_records": 0}), "incremental.driver_max_records"),
        (_with(incremental={"cluster_driver_max": -5}), "incremental.cluster_driver_max"),
        (_with(incremental={"batch": 1}), "batch"),
        (_with(max_cluster_size=-1), "positive integer"),
        (_with(split_thresholds=[0.999, 0.99]), "strictly increasing"),
        (_with(split_thresholds=[0.5, 0.99]), "must all be above threshold_match_probability 0.9"),
    ],
)
def test_bad_linkage_config_is_a_clear_error(raw, message):
    with pytest.raises(ConfigError, match=message):
        parse_linkage_config(raw)


def test_settings_compile_to_splink_sql():
    pytest.importorskip("splink")
    from cdplake.identity.linkage_settings import settings_dict

    d = settings_dict(parse_linkage_config(MINIMAL))
    assert d["link_type"] == "dedupe_only"
    assert [r["blocking_rule"] for r in d["blocking_rules_to_generate_predictions"]] == [
        "(l.`last_name` = r.`last_name`) AND (SUBSTRING(l.first_name, 1, 1) = SUBSTRING(r.first_name, 1, 1))",
        "l.email = r.email",
    ]
    levels = {
        c["output_column_name"]: [lv["sql_condition"] for lv in c["comparison_levels"]]
        for c in d["comparisons"]
    }
    assert levels["first_name"] == [
        "`first_name_l` IS NULL OR `first_name_r` IS NULL",
        "`first_name_l` = `first_name_r`",
        "jaro_winkler(`first_name_l`, `first_name_r`) >= 0.9",
        "ELSE",
    ]
    assert levels["email"][2] == (
        "NULLIF(regexp_extract(`email_l`, '^[^@]+', 0), '') = NULLIF(regexp_extract(`email_r`, '^[^@]+', 0), '')"
    )
    assert levels["dob"][1:3] == [
        "damerau_levenshtein(`dob_l`, `dob_r`) <= 1",
        "SUBSTRING(`dob_l`, 1, 7) = SUBSTRING(`dob_r`, 1, 7)",
    ]
    # the invalid-value pattern makes non-dates fall into the null level
    assert "regexp_extract" in levels["dob"][0] and "^[0-9]{4}-" in levels["dob"][0]
    first_exact = d["comparisons"][0]["comparison_levels"][1]
    assert first_exact["tf_adjustment_column"] == "first_name"


def test_budget_passes_at_the_limit_and_refuses_above_it_naming_each_rule():
    counts = [PairCount("l.last_name = r.last_name", 6, 6), PairCount("l.email = r.email", 2, 8)]
    assert check_budget(counts, 8) == 8
    with pytest.raises(CandidatePairBudgetExceeded) as err:
        check_budget(counts, 7)
    text = str(err.value)
    assert "8 candidate pairs" in text and "max_candidate_pairs=7" in text
    assert "6  l.last_name = r.last_name" in text and "2  l.email = r.email" in text


def test_cluster_size_guard_picks_the_loosest_cut_that_fits(spark):
    from pyspark.testing import assertDataFrameEqual

    from cdplake.identity.probabilistic import guard_cluster_size

    ddl = "source STRING, record_key STRING, cluster_id STRING"

    def cut(*clusters):
        return spark.createDataFrame(
            [("crm", key, cid) for cid, keys in clusters for key in keys.split()], ddl
        )

    # at 0.9 one chain of 5 records (two people joined by a weak link) and a pair;
    # at 0.99 the chain breaks into 3 + 2; at 0.999 the 3 breaks too
    loose = cut(("A", "a1 a2 a3 b1 b2"), ("C", "c1 c2"))
    strict = cut(("A", "a1 a2 a3"), ("B", "b1 b2"), ("C", "c1 c2"))
    strictest = cut(("A", "a1"), ("X", "a2 a3"), ("B", "b1 b2"), ("C", "c1 c2"))
    assertDataFrameEqual(
        guard_cluster_size([loose, strict, strictest], 3),
        cut(("1:A", "a1 a2 a3"), ("1:B", "b1 b2"), ("C", "c1 c2")),
    )
    # a size nothing fits: the strictest cut is kept
    assertDataFrameEqual(
        guard_cluster_size([loose, strict, strictest], 1),
        cut(("2:A", "a1"), ("2:X", "a2 a3"), ("2:B", "b1 b2"), ("2:C", "c1 c2")),
    )
    # large enough: the clustering at the link threshold, untouched
    assertDataFrameEqual(guard_cluster_size([loose, strict, strictest], 5), loose)


def test_a_too_large_cluster_is_split_at_the_first_stricter_threshold_where_it_fits():
    import pandas as pd

    from cdplake.identity.probabilistic import split_one_cluster

    # one cluster at the link threshold: a1-a2-a3 joined to b1-b2 by a weak link (0.95)
    nodes = [(n, None, None) for n in ("a1", "a2", "a3", "b1", "b2")]
    pairs = [("a1", "a2", 0.995), ("a2", "a3", 0.9995), ("a3", "b1", 0.95), ("b2", "b1", 0.9999)]
    group = pd.DataFrame(nodes + pairs, columns=["_l", "_r", "_p"]).assign(_group="g")

    def split(max_size):
        out = split_one_cluster(group, max_size, (0.99, 0.999))
        return dict(zip(out["unique_id"], out["cluster_id"], strict=True))

    # at 0.99 the weak link breaks: 3 + 2 fit; ids are the level and the smallest member
    assert split(3) == {"a1": "1:a1", "a2": "1:a1", "a3": "1:a1", "b1": "1:b1", "b2": "1:b1"}
    # nothing fits a size of 1: every record takes the strictest threshold's cluster
    assert split(1) == {"a1": "2:a1", "a2": "2:a2", "a3": "2:a2", "b1": "2:b1", "b2": "2:b1"}
    # mixed: b1-b2 fits at 0.99, the Annas only at 0.999
    assert split(2) == {"a1": "2:a1", "a2": "2:a2", "a3": "2:a2", "b1": "1:b1", "b2": "1:b1"}


def test_trained_parameters_go_into_the_spark_settings_of_the_same_comparisons():
    pytest.importorskip("splink")
    from cdplake.identity.linkage_settings import splink_settings
    from cdplake.identity.probabilistic import with_trained_parameters

    cfg = parse_linkage_config(MINIMAL)
    spark_sql = splink_settings(cfg).get_settings("spark").as_dict()
    trained = splink_settings(cfg).get_settings("duckdb").as_dict()
    trained["probability_two_random_records_match"] = 0.0123
    for i, comparison in enumerate(trained["comparisons"]):
        for j, level in enumerate(comparison["comparison_levels"]):
            if not level.get("is_null_level"):
                level["m_probability"], level["u_probability"] = (i + 1) / 10, (j + 1) / 100
    out = with_trained_parameters(spark_sql, trained)
    # everything but the parameters is the Spark SQL settings, untouched
    want = json.loads(json.dumps(spark_sql))
    want["probability_two_random_records_match"] = 0.0123
    for i, comparison in enumerate(want["comparisons"]):
        for j, level in enumerate(comparison["comparison_levels"]):
            if not level.get("is_null_level"):
                level["m_probability"], level["u_probability"] = (i + 1) / 10, (j + 1) / 100
    assert out == want
    assert out["sql_dialect"] == "spark" and "jaro_winkler(" in json.dumps(out)

    fewer = json.loads(json.dumps(trained))
    fewer["comparisons"][0]["comparison_levels"].pop(2)
    with pytest.raises(ValueError, match="cannot combine them"):
        with_trained_parameters(spark_sql, fewer)
