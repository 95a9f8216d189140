"""Great Expectations suites over tiny Spark frames: results, Delta append, Data Docs."""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal

import pytest
import yaml
from pyspark.testing import assertDataFrameEqual

from cdplake.config import ConfigError
from cdplake.config.quality import parse_quality_config
from cdplake.quality.expectations import build_data_docs, build_expectations, run_expectations, write_results

pytestmark = pytest.mark.integration

UTC = dt.timezone.utc
CHECKED_AT = dt.datetime(2026, 11, 1, 6, 0, tzinfo=UTC)
RUN = "run_test_1"
SCHEMA = "order_id STRING, channel STRING, customer_email STRING, total DECIMAL(18,2)"
ROWS = [
    ("o1", "web", "a@x.com", Decimal("10.00")),
    ("o2", "pos", None, Decimal("20.00")),
    ("o3", "pos", "c@x.com", Decimal("30.00")),
    ("o4", "web", "d@x.com", Decimal("40.00")),
]
SUITE_YAML = """
expectations:
  - expectation: expect_column_values_to_be_unique
    column: order_id
  - expectation: expect_column_values_to_not_be_null
    column: customer_email
    mostly: {mostly}
  - expectation: expect_column_values_to_be_in_set
    column: channel
    value_set: {channels}
  - expectation: expect_column_mean_to_be_between
    column: total
    min_value: {mean_min}
    max_value: 100
  - expectation: expect_table_row_count_to_be_between
    min_value: 1
"""
KEYS = ["expectation", "column", "success", "observed_value"]
KEY_SCHEMA = "expectation STRING, column STRING, success BOOLEAN, observed_value STRING"


def suite(**params):
    raw = yaml.safe_load(SUITE_YAML.format(**params))
    return parse_quality_config(raw, "orders").expectations


@pytest.fixture(scope="module")
def passing(spark):
    df = spark.createDataFrame(ROWS, SCHEMA)
    # 1 of 4 emails null = 75% non-null >= mostly 0.7; mean total (10+20+30+40)/4 = 25
    cfg = suite(mostly=0.7, channels="[web, pos]", mean_min=5)
    return run_expectations(df, "orders", cfg, RUN, expected_rows=4, checked_at=CHECKED_AT)


@pytest.fixture(scope="module")
def failing(spark):
    df = spark.createDataFrame([*ROWS, ("o4", "app", "e@x.com", Decimal("50.00"))], SCHEMA)
    # o4 twice; 4 of 5 emails = 80% < mostly 0.9; 'app' not in [web, pos];
    # mean (10+20+30+40+50)/5 = 30 < 35; 5 rows != expected 4
    cfg = suite(mostly=0.9, channels="[web, pos]", mean_min=35)
    return run_expectations(df, "orders", cfg, RUN, expected_rows=4, checked_at=CHECKED_AT)


def test_passing_suite(spark, passing):
    expected = spark.createDataFrame(
        [
            ("expect_column_values_to_be_unique", "order_id", True, "0 of 4 unexpected (0.00%)"),
            ("expect_column_values_to_not_be_null", "customer_email", True, "1 of 4 unexpected (25.00%)"),
            ("expect_column_values_to_be_in_set", "channel", True, "0 of 4 unexpected (0.00%)"),
            ("expect_column_mean_to_be_between", "total", True, "25.0"),
            ("expect_table_row_count_to_be_between", None, True, "4"),
            ("expect_table_row_count_to_equal", None, True, "4"),
        ],
        KEY_SCHEMA,
    )
    assertDataFrameEqual(passing.select(*KEYS), expected)
    stamps = passing.select("run_id", "table", "checked_at").distinct().collect()
    assert [tuple(r) for r in stamps] == [(RUN, "orders", CHECKED_AT.replace(tzinfo=None))]


def test_failing_suite(spark, failing):
    expected = spark.createDataFrame(
        [
            ("expect_column_values_to_be_unique", "order_id", False, "2 of 5 unexpected (40.00%)"),
            ("expect_column_values_to_not_be_null", "customer_email", False, "1 of 5 unexpected (20.00%)"),
            ("expect_column_values_to_be_in_set", "channel", False, "1 of 5 unexpected (20.00%)"),
            ("expect_column_mean_to_be_between", "total", False, "30.0"),
            ("expect_table_row_count_to_be_between", None, True, "5"),
            ("expect_table_row_count_to_equal", None, False, "5"),
        ],
        KEY_SCHEMA,
    )
    assertDataFrameEqual(failing.select(*KEYS), expected)
    details = json.loads(
        failing.where("expectation = 'expect_column_values_to_not_be_null'").first()["details"]
    )
    assert details["kwargs"] == {"column": "customer_email", "mostly": 0.9}
    # counts only: no sample values of personal data in the results
    assert not details["result"].get("partial_unexpected_list")


def test_missing_column_fails_with_exception_in_details(spark):
    df = spark.createDataFrame(ROWS, SCHEMA)
    cfg = parse_quality_config(
        {"expectations": [{"expectation": "expect_column_values_to_not_be_null", "column": "ghost"}]},
        "orders",
    ).expectations
    row = run_expectations(df, "orders", cfg, RUN, checked_at=CHECKED_AT).first()
    assert (row["expectation"], row["column"], row["success"]) == (
        "expect_column_values_to_not_be_null",
        "ghost",
        False,
    )
    assert "ghost" in json.loads(row["details"])["exception"]


def test_unknown_expectation_is_a_config_error():
    cfg = parse_quality_config(
        {"expectations": [{"expectation": "expect_column_values_to_be_lovely", "column": "a"}]}, "orders"
    ).expectations
    with pytest.raises(ConfigError, match=r"quality/orders.yaml: expectations\[0\].*no expectation"):
        build_expectations("orders", cfg)
    bad_args = parse_quality_config(
        {
            "expectations": [
                {"expectation": "expect_column_values_to_be_in_set", "column": "a", "value_sett": [1]}
            ]
        },
        "orders",
    ).expectations
    with pytest.raises(ConfigError, match=r"expect_column_values_to_be_in_set\): invalid arguments"):
        build_expectations("orders", bad_args)


def test_write_results_appends_to_delta(spark, tmp_path, passing, failing):
    path = str(tmp_path / "delta" / "quality" / "dq_results")
    write_results(passing, path)
    write_results(failing, path)
    stored = spark.read.format("delta").load(path)
    assertDataFrameEqual(stored, passing.unionByName(failing))
    # 7 of 12 passed: all 6 of the passing run and the failing run's row-count-between
    assert stored.where("success").count() == 7


def test_data_docs_index(spark, tmp_path):
    df = spark.createDataFrame(ROWS, SCHEMA)
    cfg = suite(mostly=0.7, channels="[web, pos]", mean_min=5)
    out = tmp_path / "dq_docs"
    docs = build_data_docs({"orders": df, "not_configured": df}, {"orders": cfg}, out, run_id="docs_run_1")
    assert docs.index == out.resolve() / "index.html"
    assert docs.success == {"orders": True}
    html = docs.index.read_text(encoding="utf-8")
    assert "orders" in html
    validation_pages = list((out / "validations").rglob("*.html"))
    assert len(validation_pages) == 1
    assert "docs_run_1" in str(validation_pages[0])
    # a second build into the same folder reuses the GX project and keeps the first run
    failing_cfg = suite(mostly=0.9, channels="[web]", mean_min=5)
    assert build_data_docs({"orders": df}, {"orders": failing_cfg}, out, run_id="docs_run_2").success == {
        "orders": False
    }
    assert len(list((out / "validations").rglob("*.html"))) == 2
