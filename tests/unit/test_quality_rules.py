"""Row rules: YAML validation, predicates, the split by action, counts and fail rules."""

from __future__ import annotations

import datetime as dt
import textwrap
from decimal import Decimal
from pathlib import Path

import pytest
from pyspark.testing import assertDataFrameEqual

from cdplake.config import ConfigError
from cdplake.config.quality import Rule, load_quality_config, load_quality_configs, parse_quality_config
from cdplake.quality.rules import (
    FAILED_RULES,
    RuleCompilationError,
    RuleViolationError,
    apply_rules,
    check_fail_rules,
    quarantine_records,
    rule_counts,
    rule_predicate,
)

REPO = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc

ORDERS_YAML = """
rules:
  - id: order_id_present
    kind: not_null
    column: order_id
    action: fail
  - id: quantity_positive
    kind: range
    column: quantity
    min: 1
    action: quarantine
  - id: price_non_negative
    kind: range
    column: price
    min: 0
    max: 10000
    action: quarantine
  - id: currency_iso
    kind: regex
    column: currency
    pattern: "^[A-Z]{3}$"
    action: quarantine
  - id: channel_known
    kind: allowed_values
    column: channel
    values: [web, pos]
    action: warn
  - id: after_business_start
    kind: range
    column: order_ts
    min: 2015-01-01
    action: quarantine
  - id: web_has_email
    kind: sql
    expr: channel <> 'web' OR email IS NOT NULL
    action: warn
"""
SCHEMA = (
    "order_id STRING, quantity INT, price DECIMAL(18,2), currency STRING, channel STRING, "
    "order_ts TIMESTAMP, email STRING"
)
TS = dt.datetime(2026, 10, 5, 10, 0, tzinfo=UTC)
OLD = dt.datetime(2014, 12, 31, 23, 59, tzinfo=UTC)
ROWS = [
    ("o1", 2, Decimal("4.50"), "GBP", "web", TS, "a@x.com"),  # clean
    ("o2", 1, Decimal("9.00"), "GBP", "phone", TS, None),  # warn only: unknown channel
    ("o3", 0, Decimal("-1.00"), "GBP", "pos", TS, None),  # two quarantine rules
    ("o4", None, None, None, None, None, None),  # nulls pass every non-not_null rule
    ("o5", 3, Decimal("1.00"), "gbp", "web", OLD, None),  # quarantine x2 plus a warning
]


def rules(yaml_text: str = ORDERS_YAML) -> tuple[Rule, ...]:
    import yaml

    return parse_quality_config(yaml.safe_load(yaml_text), "orders").rules


def test_predicates_per_kind_and_null_handling(spark):
    df = spark.createDataFrame(ROWS, SCHEMA)
    by_id = {r.id: r for r in rules()}
    got = df.select(
        "order_id",
        *[rule_predicate(by_id[i]).alias(i) for i in ("quantity_positive", "currency_iso", "channel_known")],
        rule_predicate(by_id["after_business_start"]).alias("after_start"),
        rule_predicate(by_id["web_has_email"]).alias("web_email"),
    )
    expected = spark.createDataFrame(
        [
            ("o1", True, True, True, True, True),
            ("o2", True, True, False, True, True),
            ("o3", False, True, True, True, True),
            # o4: all nulls -> every rule passes; the SQL rule is null (null <> 'web') -> passes
            ("o4", True, True, True, True, True),
            # o5: 'gbp' is lower case; 2014-12-31 23:59 UTC < 2015-01-01 00:00 UTC; web without email
            ("o5", True, False, True, False, False),
        ],
        "order_id STRING, quantity_positive BOOLEAN, currency_iso BOOLEAN, channel_known BOOLEAN, "
        "after_start BOOLEAN, web_email BOOLEAN",
    )
    assertDataFrameEqual(got, expected)


def test_not_null_over_several_columns_and_never_null(spark):
    rule = Rule(id="both", kind="not_null", action="quarantine", columns=("a", "b"))
    df = spark.createDataFrame([(1, "x", 1), (2, None, 1), (3, "x", None)], "id INT, a STRING, b INT")
    got = df.select("id", rule_predicate(rule).alias("ok"))
    assertDataFrameEqual(
        got, spark.createDataFrame([(1, True), (2, False), (3, False)], "id INT, ok BOOLEAN")
    )


def test_apply_rules_splits_by_action(spark):
    outcome = apply_rules(spark.createDataFrame(ROWS, SCHEMA), rules())

    assertDataFrameEqual(outcome.passed, spark.createDataFrame([ROWS[0], ROWS[1], ROWS[3]], SCHEMA))
    # failed ids in rule order, warnings included
    assertDataFrameEqual(
        outcome.quarantined,
        spark.createDataFrame(
            [
                (*ROWS[2], ["quantity_positive", "price_non_negative"]),
                (*ROWS[4], ["currency_iso", "after_business_start", "web_has_email"]),
            ],
            f"{SCHEMA}, {FAILED_RULES} ARRAY<STRING>",
        ),
    )
    # only rows kept in passed, only their warn ids
    assertDataFrameEqual(
        outcome.warnings,
        spark.createDataFrame([(*ROWS[1], ["channel_known"])], f"{SCHEMA}, {FAILED_RULES} ARRAY<STRING>"),
    )


def test_rule_counts_one_aggregate(spark):
    outcome = apply_rules(spark.createDataFrame(ROWS, SCHEMA), rules())
    counts = rule_counts(outcome)
    assert counts.rows == 5
    assert dict(counts.failing) == {
        "order_id_present": 0,
        "quantity_positive": 1,  # o3
        "price_non_negative": 1,  # o3
        "currency_iso": 1,  # o5
        "channel_known": 1,  # o2
        "after_business_start": 1,  # o5
        "web_has_email": 1,  # o5
    }
    assert counts.passed_rules == ("order_id_present",)
    check_fail_rules(counts)  # no fail rule violated: must not raise


def test_fail_rule_raises_naming_rule_and_count(spark):
    rows = [
        *ROWS,
        (None, 1, Decimal("1.00"), "GBP", "pos", TS, None),
        (None, 1, None, None, None, None, None),
    ]
    outcome = apply_rules(spark.createDataFrame(rows, SCHEMA), rules())
    with pytest.raises(RuleViolationError, match=r"in orders: order_id_present \(2 of 7 rows\)") as err:
        check_fail_rules(rule_counts(outcome), table="orders")
    assert err.value.violations == {"order_id_present": 2}
    # rows failing a fail rule are never in passed
    assert outcome.passed.where("order_id IS NULL").count() == 0
    assert outcome.quarantined.where("order_id IS NULL").count() == 2


def test_no_rules_passes_everything(spark):
    df = spark.createDataFrame(ROWS, SCHEMA)
    outcome = apply_rules(df, ())
    assertDataFrameEqual(outcome.passed, df)
    assert outcome.quarantined.count() == 0
    assert rule_counts(outcome).rows == 5


def test_rule_on_unknown_column_is_named(spark):
    bad = Rule(id="ghost_present", kind="not_null", action="fail", columns=("ghost",))
    with pytest.raises(RuleCompilationError, match="ghost_present"):
        apply_rules(spark.createDataFrame(ROWS, SCHEMA), (*rules(), bad))


def test_quarantine_records_layout(spark):
    schema = "id STRING, qty INT, _source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
    df = spark.createDataFrame([("a", 0, "f1", TS, "b1"), ("b", 2, "f1", TS, "b1")], schema)
    rule = Rule(id="qty_positive", kind="range", action="quarantine", columns=("qty",), min=1)
    got = quarantine_records(apply_rules(df, [rule]).quarantined, quarantined_at=TS)
    expected = spark.createDataFrame(
        [('{"id":"a","qty":0}', ["qty_positive"], "f1", "b1", TS)],
        "record STRING, reasons ARRAY<STRING>, _source_file STRING, _batch_id STRING, _quarantined_at TIMESTAMP",
    )
    assertDataFrameEqual(got, expected)


# --- YAML validation -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ("- {id: r1, kind: between, column: a, action: warn}", r"rule 'r1': unknown kind 'between'"),
        ("- {id: r1, kind: range, column: a, action: warn}", r"rule 'r1': kind range needs at least one of"),
        ("- {id: r1, kind: regex, column: a, action: drop, pattern: x}", r"rule 'r1': unknown action 'drop'"),
        (
            "- {id: r1, kind: allowed_values, column: a, action: warn}",
            r"rule 'r1': kind allowed_values needs \['values'\]",
        ),
        (
            "- {id: r1, kind: regex, column: a, action: warn, pattern: '(['}",
            r"rule 'r1': pattern .* not a valid",
        ),
        (
            "- {id: r1, kind: range, column: a, action: warn, min: 5, max: 1}",
            r"rule 'r1': min 5 is greater than max 1",
        ),
        ("- {id: r1, kind: range, column: a, action: warn, min: '5'}", r"rule 'r1': min must be a number"),
        ("- {id: r1, kind: not_null, action: warn}", r"rule 'r1': kind not_null needs column"),
        (
            "- {id: r1, kind: not_null, column: a, action: warn, pattern: x}",
            r"rule 'r1': unknown key\(s\) \['pattern'\]",
        ),
        ("- {id: R1, kind: not_null, column: a, action: warn}", r"rule 'R1': id must be lower_snake_case"),
        ("- {kind: not_null, column: a, action: warn}", r"rules\[0\] is missing 'id'"),
        (
            "- {id: r1, kind: not_null, column: a, action: warn}\n- {id: r1, kind: not_null, column: b, action: warn}",
            r"rule id 'r1' is defined more than once",
        ),
    ],
)
def test_bad_rule_yaml_names_file_and_rule(tmp_path, body, message):
    (tmp_path / "quality").mkdir()
    path = tmp_path / "quality" / "orders.yaml"
    path.write_text("rules:\n" + textwrap.indent(body, "  ") + "\n", encoding="utf-8")
    with pytest.raises(ConfigError, match=message) as err:
        load_quality_config("orders", tmp_path)
    assert str(path) in str(err.value)


def test_bad_expectation_yaml(tmp_path):
    (tmp_path / "quality").mkdir()
    (tmp_path / "quality" / "orders.yaml").write_text(
        "expectations:\n  - {expectation: expect_column_values_to_not_be_null, column: a, mostly: 1.5}\n"
    )
    with pytest.raises(
        ConfigError, match=r"expectations\[0\] \(expect_column_values_to_not_be_null\): mostly"
    ):
        load_quality_config("orders", tmp_path)


# --- the shipped rules compile against the silver contract -----------------------------


def _empty_silver(spark) -> dict:
    """Empty silver frames built by the silver conform transforms (schemas from the code)."""
    from cdplake.bronze.sources import crm_schema_ddl
    from cdplake.silver import conform_crm, conform_email, conform_events, conform_orders

    lineage = "_source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
    lines = spark.createDataFrame([], f"value STRING, {lineage}")
    crm = spark.createDataFrame([], f"{crm_schema_ddl()}, {lineage}")
    return {
        "events": conform_events(lines)[0],
        "email_events": conform_email(lines)[0],
        "crm_contacts": conform_crm(crm)[0],
        "orders": conform_orders(lines)[0],
    }


def test_shipped_rules_compile_against_silver_schemas(spark):
    configs = load_quality_configs(REPO / "conf")
    assert sorted(configs) == ["crm_contacts", "crm_contacts_history", "email_events", "events", "orders"]
    # the history gets its rows from crm_contacts, after that table's rules: a suite only
    assert configs.pop("crm_contacts_history").rules == ()
    frames = _empty_silver(spark)
    for table, cfg in configs.items():
        assert cfg.rules, table
        assert {r.action for r in cfg.rules} == {"warn", "quarantine", "fail"}, table
        outcome = apply_rules(frames[table], cfg.rules)  # raises RuleCompilationError if not
        assert dict(rule_counts(outcome).failing) == dict.fromkeys((r.id for r in cfg.rules), 0)


def test_rule_reasons_name_blocking_failures_of_rows_conform_accepted(spark):
    from cdplake.config.quality import TableQuality
    from cdplake.silver.build import with_rule_reasons

    cfg = TableQuality("orders", "test", rules=rules())
    df = spark.createDataFrame(
        [
            (*ROWS[1], []),  # warn only: kept, no reason added
            (*ROWS[2], []),  # two quarantine rules
            # conform rejected: rules are not evaluated (a null order_id would trip a fail rule)
            (None, None, None, None, None, None, None, ["missing_order_id"]),
            (*ROWS[0], []),  # passes everything
        ],
        SCHEMA + ", _reasons ARRAY<STRING>",
    )
    assertDataFrameEqual(
        with_rule_reasons(df, cfg).select("order_id", FAILED_RULES, "_reasons"),
        spark.createDataFrame(
            [
                ("o2", ["channel_known"], []),
                ("o3", ["quantity_positive", "price_non_negative"], ["rule:quantity_positive", "rule:price_non_negative"]),
                (None, None, ["missing_order_id"]),
                ("o1", [], []),
            ],
            "order_id STRING, failed_rules ARRAY<STRING>, _reasons ARRAY<STRING>",
        ),
    )  # fmt: skip


def test_rule_counts_add_up_over_batches():
    from cdplake.quality.rules import RuleCounts

    rules = (Rule("a", "not_null", "fail", ("x",)), Rule("b", "not_null", "warn", ("y",)))
    first = RuleCounts(rows=10, failing={"a": 0, "b": 2}, rules=rules)
    second = RuleCounts(rows=5, failing={"a": 1, "b": 3}, rules=rules)
    # 10 + 5 rows; a: 0 + 1; b: 2 + 3
    assert first + second == RuleCounts(rows=15, failing={"a": 1, "b": 5}, rules=rules)
    with pytest.raises(ValueError, match="different rule sets"):
        first + RuleCounts(rows=1, failing={"a": 0}, rules=rules[:1])


def test_event_time_lateness_parses_and_bad_values_are_named():
    from cdplake.config.quality import EventTime

    parsed = parse_quality_config(
        {"event_time": {"column": "order_ts", "allowed_lateness": "6 hours"}}, "orders"
    )
    assert parsed.event_time == EventTime("order_ts", 6 * 3600)
    assert parse_quality_config({}, "orders").event_time is None
    assert load_quality_config(
        "events", Path(__file__).resolve().parents[2] / "conf"
    ).event_time == EventTime("event_ts", 2 * 86400)
    with pytest.raises(ConfigError, match="allowed_lateness must look like"):
        parse_quality_config({"event_time": {"column": "x", "allowed_lateness": "soon"}}, "orders")
    with pytest.raises(ConfigError, match="exactly column and allowed_lateness"):
        parse_quality_config({"event_time": {"column": "x"}}, "orders")
