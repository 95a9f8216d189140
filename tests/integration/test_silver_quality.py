"""Quality wired into the silver build: row rules, dq_results, and the CRM SCD2 history."""

from __future__ import annotations

import datetime as dt
import os
import shutil
from pathlib import Path

import pytest
from pyspark.errors import StreamingQueryException
from pyspark.testing import assertDataFrameEqual

from cdplake.bronze import CRM_COLUMNS, ingest_source
from cdplake.config import load_env
from cdplake.io.delta import read_table, table_exists, table_version
from cdplake.quality.dataset import DatasetCheck, dq_results_path
from cdplake.silver import SilverResult, build_silver_table
from cdplake.silver.build import check_silver_tables
from cdplake.silver.history import merge_history

pytestmark = pytest.mark.integration

REPO = Path(__file__).resolve().parents[2]
UTC = dt.timezone.utc
T1 = dt.datetime(2026, 10, 6, 1, 0, tzinfo=UTC)
T2 = dt.datetime(2026, 10, 7, 1, 0, tzinfo=UTC)
QUARANTINE = (
    "record STRING, reasons ARRAY<STRING>, _source_file STRING, _batch_id STRING, _quarantined_at TIMESTAMP"
)
LINEAGE = "_source_file STRING, _ingested_at TIMESTAMP, _batch_id STRING"
CRM = (
    "contact_id STRING, first_name STRING, last_name STRING, email STRING, phone STRING, "
    "address_line1 STRING, city STRING, postcode STRING, country STRING, date_of_birth DATE, "
    "loyalty_tier STRING, email_opt_in BOOLEAN, email_opt_in_at TIMESTAMP, updated_at TIMESTAMP"
)
HISTORY = f"{CRM}, valid_from TIMESTAMP, valid_to TIMESTAMP, is_current BOOLEAN, {LINEAGE}"
EVENT_RULES = """
rules:
  - id: quantity_positive
    kind: range
    column: quantity
    min: 1
    action: quarantine
  - id: price_below_1000
    kind: range
    column: price
    max: 1000
    action: quarantine
  - id: revenue_non_negative
    kind: range
    column: revenue
    min: 0
    action: warn
  - id: no_test_events
    kind: sql
    expr: event IS DISTINCT FROM 'Test Event'
    action: {test_event_action}
expectations:
  - expectation: expect_column_values_to_be_unique
    column: message_id
  - expectation: expect_column_values_to_not_be_null
    column: currency
  - expectation: expect_column_mean_to_be_between
    column: price
    min_value: 1
    max_value: 50
"""


def track(mid: str, **props) -> str:
    body = ",".join(f'"{k}":{v}' for k, v in props.items())
    return (
        f'{{"messageId":"{mid}","type":"track","event":"Product Added","userId":"u1",'
        f'"properties":{{{body}}},"timestamp":"2026-10-05T10:00:00Z"}}'
    )


def land(env, source: str, name: str, content: str, day: str = "2026-10-05") -> str:
    path = Path(env.paths.landing(source)) / day / name
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(content, encoding="utf-8")
    return f"file:{path}"


@pytest.fixture
def rules_env(tmp_path):
    """A conf/ of its own: the local environment plus a small rule file for events."""
    conf = tmp_path / "conf"
    shutil.copytree(REPO / "conf" / "env", conf / "env")
    shutil.copytree(REPO / "conf" / "contracts", conf / "contracts")
    (conf / "quality").mkdir()

    def write_rules(test_event_action: str) -> None:
        text = EVENT_RULES.format(test_event_action=test_event_action)
        (conf / "quality" / "events.yaml").write_text(text, encoding="utf-8")

    write_rules("fail")
    env = load_env(
        "local", conf_dir=conf, environ={**os.environ, "CDPLAKE__STORAGE__ROOT": str(tmp_path / "lake")}
    )
    return env, write_rules


def test_rules_quarantine_warn_and_fail_and_dataset_checks(spark, rules_env):
    env, write_rules = rules_env
    a1 = track("a1", price='"10"', quantity=2)
    a2 = track("a2", price='"10"', quantity=0)
    a3 = track("a3", price='"2000"', quantity=0)
    a4 = track("a4", price='"30"', quantity=1, revenue='"-5"')
    uri = land(env, "events", "events-0001.jsonl", f"{a1}\n{a2}\n{a3}\n{a4}\noops\n{a1}\n")
    ingest_source(spark, env, "events", "run-1", clock=lambda: T1)

    result = build_silver_table(spark, env, "events", "run-1", clock=lambda: T1)

    # 6 lines in = 2 out (a1, a4) + 3 quarantined (a2, a3 by rules, "oops" by conform)
    # + 1 deduplicated (the copy of a1). Rules judge only rows conform accepted.
    # Dataset checks: 3 from the YAML + row count = 0 before + 2 inserted + at most
    # 6 bronze - 3 quarantined = 3 rows; currency is null on both rows.
    assert result == SilverResult(
        "events",
        6,
        2,
        3,
        1,
        rows_inserted=2,
        batches=1,
        rule_failures=(
            ("quantity_positive", "quarantine", 2),
            ("price_below_1000", "quarantine", 1),
            ("revenue_non_negative", "warn", 1),
        ),
        checks=(
            DatasetCheck(
                "events", 5, ("expect_column_values_to_not_be_null(currency): 2 of 2 unexpected (100.00%)",)
            ),
        ),
    )
    assertDataFrameEqual(
        read_table(spark, env.paths.table("quarantine", "events")),
        spark.createDataFrame(
            [
                (a2, ["rule:quantity_positive"], uri, "run-1:0", T1),
                (a3, ["rule:quantity_positive", "rule:price_below_1000"], uri, "run-1:0", T1),
                ("oops", ["malformed_json"], uri, "run-1:0", T1),
            ],
            QUARANTINE,
        ),
    )
    assertDataFrameEqual(
        read_table(spark, env.paths.table("silver", "events")).select("message_id", "price", "revenue"),
        spark.createDataFrame(
            [("a1", 10, None), ("a4", 30, -5)], "message_id STRING, price INT, revenue INT"
        ).selectExpr(
            "message_id", "CAST(price AS DECIMAL(18,2)) price", "CAST(revenue AS DECIMAL(18,2)) revenue"
        ),
    )
    assertDataFrameEqual(
        read_table(spark, dq_results_path(env)).select("run_id", "table", "expectation", "column", "success", "observed_value"),
        spark.createDataFrame(
            [
                ("run-1", "events", "expect_column_values_to_be_unique", "message_id", True, "0 of 2 unexpected (0.00%)"),
                ("run-1", "events", "expect_column_values_to_not_be_null", "currency", False, "2 of 2 unexpected (100.00%)"),
                # (10 + 30) / 2 = 20
                ("run-1", "events", "expect_column_mean_to_be_between", "price", True, "20.0"),
                ("run-1", "events", "expect_table_row_count_to_equal", None, True, "2"),
                ("run-1", "events", "expect_table_row_count_to_be_between", None, True, "2"),
            ],
            "run_id STRING, table STRING, expectation STRING, column STRING, success BOOLEAN, observed_value STRING",
        ),
    )  # fmt: skip

    # A fail rule: the whole batch stops before any write and its checkpoint is not committed.
    land(
        env,
        "events",
        "events-0002.jsonl",
        track("a5", quantity=1) + "\n" + track("a6").replace("Product Added", "Test Event") + "\n",
        day="2026-10-06",
    )
    ingest_source(spark, env, "events", "run-2", clock=lambda: T2)
    versions = {
        p: table_version(spark, p)
        for p in (
            env.paths.table("silver", "events"),
            env.paths.table("quarantine", "events"),
            dq_results_path(env),
        )
    }
    with pytest.raises(
        StreamingQueryException,
        match=r"fail rule\(s\) violated in events batch run-2:1: no_test_events \(1 of 2 rows\)",
    ):
        build_silver_table(spark, env, "events", "run-2", clock=lambda: T2)
    assert {p: table_version(spark, p) for p in versions} == versions

    # The rule becomes a warning (config is data): the same batch is read again and written.
    write_rules("warn")
    again = build_silver_table(spark, env, "events", "run-3", clock=lambda: T2, dataset_checks=False)
    assert again == SilverResult("events", 2, 2, 0, 0, rows_inserted=2, batches=1, rule_failures=(("no_test_events", "warn", 1),))  # fmt: skip


def crm_csv(*rows: dict[str, str]) -> str:
    lines = [",".join(CRM_COLUMNS)] + [",".join(r.get(c, "") for c in CRM_COLUMNS) for r in rows]
    return "\n".join(lines) + "\n"


def day(d: int) -> dt.datetime:
    return dt.datetime(2026, 10, d, tzinfo=UTC)


def contact(cid: str, updated: int, tier: str, opt_in: str = "", opt_in_at: str = "") -> dict[str, str]:
    return {
        "contact_id": cid,
        "first_name": "ann" if cid == "c1" else "bob",
        "loyalty_tier": tier,
        "email_opt_in": opt_in,
        "email_opt_in_at": opt_in_at,
        "updated_at": f"2026-10-{updated:02d}T00:00:00Z",
    }


def crm_row(cid, updated, tier, opt_in, *interval, source, batch, ingested):
    name = "Ann" if cid == "c1" else "Bob"
    opt_in_at = day(1) if cid == "c1" else None  # c1 opted in on 10-01, the time stays on opt-out
    base = (cid, name, None, None, None, None, None, None, None, None, tier, opt_in, opt_in_at, day(updated))
    return (*base, *interval, source, ingested, batch)


def test_crm_history_keeps_every_version_in_updated_at_order_and_replays_change_nothing(spark, lake_env):
    paths = lake_env.paths
    # c1 opts in on 10-01 and unsubscribes on 10-03; c2 has one version
    f1 = land(
        lake_env,
        "crm",
        "contacts-1.csv",
        crm_csv(
            contact("c1", 1, "bronze", "true", "2026-10-01T00:00:00Z"),
            contact("c1", 3, "bronze", "false", "2026-10-01T00:00:00Z"),
            contact("c2", 2, "silver"),
        ),
    )
    ingest_source(spark, lake_env, "crm", "run-1", clock=lambda: T1)
    first = build_silver_table(
        spark, lake_env, "crm_contacts", "run-1", clock=lambda: T1, dataset_checks=False
    )
    # 3 rows: c1@10-03 and c2 current, c1@10-01 superseded in the batch; 3 history versions
    assert first == SilverResult("crm_contacts", 3, 2, 0, 1, rows_inserted=2, batches=1, history_inserted=3)

    # later: c1's 10-02 version arrives late, c1@10-03 again, and c3 with an unknown tier
    f2 = land(
        lake_env,
        "crm",
        "contacts-2.csv",
        crm_csv(
            contact("c1", 2, "silver", "true", "2026-10-01T00:00:00Z"),
            contact("c1", 3, "bronze", "false", "2026-10-01T00:00:00Z"),
            contact("c3", 4, "diamond"),
        ),
        day="2026-10-06",
    )
    ingest_source(spark, lake_env, "crm", "run-2", clock=lambda: T2)
    second = build_silver_table(
        spark, lake_env, "crm_contacts", "run-2", clock=lambda: T2, dataset_checks=False
    )
    # 3 in = 0 out + 1 quarantined (c3) + 2 deduplicated (neither c1 row is newer than 10-03);
    # history: 10-02 is new (1 inserted) and closes c1@10-01 early (1 restated)
    assert second == SilverResult(
        "crm_contacts", 3, 0, 1, 2, batches=1, history_inserted=1, history_restated=1,
        rule_failures=(("crm_loyalty_tier_known", "quarantine", 1),),
    )  # fmt: skip

    b1 = {"source": f1, "batch": "run-1:0", "ingested": T1}
    b2 = {"source": f2, "batch": "run-2:1", "ingested": T2}
    expected_history = spark.createDataFrame(
        [
            crm_row("c1", 1, "bronze", True, day(1), day(2), False, **b1),
            crm_row("c1", 2, "silver", True, day(2), day(3), False, **b2),
            crm_row("c1", 3, "bronze", False, day(3), None, True, **b1),
            crm_row("c2", 2, "silver", None, day(2), None, True, **b1),
        ],
        HISTORY,
    )
    history_path = paths.table("silver", "crm_contacts_history")
    assertDataFrameEqual(read_table(spark, history_path), expected_history)
    # the current view is the history's current rows
    assertDataFrameEqual(
        read_table(spark, paths.table("silver", "crm_contacts")),
        expected_history.where("is_current").drop("valid_from", "valid_to", "is_current"),
    )
    quarantine = read_table(spark, paths.table("quarantine", "crm"))
    assertDataFrameEqual(
        quarantine.select("reasons", "_batch_id"),
        spark.createDataFrame(
            [(["rule:crm_loyalty_tier_known"], "run-2:1")], "reasons ARRAY<STRING>, _batch_id STRING"
        ),
    )

    # a crash after the writes, before the checkpoint commit: the batch is replayed and the
    # transaction ids make every write a no-op
    tables = [history_path, paths.table("silver", "crm_contacts"), paths.table("quarantine", "crm")]
    versions = [table_version(spark, p) for p in tables]
    ckpt = Path(paths.checkpoint("silver_crm_contacts"))
    for name in ("1", ".1.crc"):
        (ckpt / "commits" / name).unlink(missing_ok=True)
    replay = build_silver_table(
        spark, lake_env, "crm_contacts", "run-3", clock=lambda: T2, dataset_checks=False
    )
    assert replay == SilverResult(
        "crm_contacts", 3, 0, 1, 2, batches=1, rule_failures=(("crm_loyalty_tier_known", "quarantine", 1),)
    )
    assert [table_version(spark, p) for p in tables] == versions
    assertDataFrameEqual(read_table(spark, history_path), expected_history)


def test_merge_history_is_idempotent_without_transaction_ids(spark, tmp_path):
    path = str(tmp_path / "history")
    schema = f"contact_id STRING, tier STRING, updated_at TIMESTAMP, {LINEAGE}"
    lin = ("f", T1, "b")
    first = spark.createDataFrame([("c1", "a", day(1), *lin), ("c1", "c", day(3), *lin)], schema)
    late = spark.createDataFrame([("c1", "b", day(2), *lin)], schema)

    merge_history(first, path, "contact_id", "updated_at")
    metrics = merge_history(late, path, "contact_id", "updated_at")
    version = table_version(spark, path)
    again = merge_history(late, path, "contact_id", "updated_at")

    # the late 10-02 version is inserted and closes 10-01; applying it again changes nothing
    assert (metrics.new_versions, metrics.inserted, metrics.restated) == (1, 1, 1)
    assert (again.new_versions, again.inserted, again.restated) == (0, 0, 0)
    assert table_version(spark, path) == version
    assertDataFrameEqual(
        read_table(spark, path),
        spark.createDataFrame(
            [
                ("c1", "a", day(1), day(1), day(2), False, *lin),
                ("c1", "b", day(2), day(2), day(3), False, *lin),
                ("c1", "c", day(3), day(3), None, True, *lin),
            ],
            f"contact_id STRING, tier STRING, updated_at TIMESTAMP, valid_from TIMESTAMP, valid_to TIMESTAMP, "
            f"is_current BOOLEAN, {LINEAGE}",
        ),
    )


def test_processing_time_stream_checks_the_suite_after_every_batch(spark, rules_env):
    env, write_rules = rules_env
    write_rules("warn")
    land(env, "events", "events-0001.jsonl", track("a1", price='"10"', quantity=1) + "\n" + track("a4", price='"30"', quantity=1) + "\n")  # fmt: skip
    ingest_source(spark, env, "events", "run-1", clock=lambda: T1)
    # A processing-time trigger returns with the query running: there is no end of run, so
    # the suite must run inside each batch (results appended with the batch's txn id).
    build_silver_table(spark, env, "events", "run-p", trigger="1 second", clock=lambda: T1)
    query = next(q for q in spark.streams.active if q.name == "silver_events")
    try:
        query.processAllAvailable()
        land(
            env, "events", "events-0002.jsonl", track("a5", price='"50"', quantity=1) + "\n", day="2026-10-06"
        )
        ingest_source(spark, env, "events", "run-2", clock=lambda: T2)
        query.processAllAvailable()
    finally:
        query.stop()
    assert query.exception() is None
    assertDataFrameEqual(
        read_table(spark, dq_results_path(env)).select("run_id", "expectation", "success", "observed_value"),
        spark.createDataFrame(
            [
                # after batch 0: a1, a4
                ("run-p", "expect_column_values_to_be_unique", True, "0 of 2 unexpected (0.00%)"),
                ("run-p", "expect_column_values_to_not_be_null", False, "2 of 2 unexpected (100.00%)"),
                ("run-p", "expect_column_mean_to_be_between", True, "20.0"),
                # after batch 1: a5 added, mean (10 + 30 + 50) / 3 = 30
                ("run-p", "expect_column_values_to_be_unique", True, "0 of 3 unexpected (0.00%)"),
                ("run-p", "expect_column_values_to_not_be_null", False, "3 of 3 unexpected (100.00%)"),
                ("run-p", "expect_column_mean_to_be_between", True, "30.0"),
            ],
            "run_id STRING, expectation STRING, success BOOLEAN, observed_value STRING",
        ),
    )


def test_whole_table_suites_for_the_gold_lane(spark, rules_env):
    # The stream's gold lane runs the suites itself (check_silver_tables), after streams that
    # ran without them; tables not built yet (email_events, crm_contacts, orders) are skipped.
    env, write_rules = rules_env
    write_rules("warn")
    a1 = track("a1", price='"10"', quantity=2)
    a2 = track("a2", price='"10"', quantity=0)
    a4 = track("a4", price='"30"', quantity=1)
    land(env, "events", "events-0001.jsonl", f"{a1}\n{a2}\n{a4}\noops\n")
    ingest_source(spark, env, "events", "run-1", clock=lambda: T1)
    built = build_silver_table(spark, env, "events", "run-1", clock=lambda: T1, dataset_checks=False)
    assert (built.rows_out, built.rows_quarantined, built.checks) == (2, 2, ())
    assert not table_exists(spark, dq_results_path(env))

    checks = check_silver_tables(spark, env, "gold-lane")

    assert checks == (
        DatasetCheck(
            "events", 4, ("expect_column_values_to_not_be_null(currency): 2 of 2 unexpected (100.00%)",)
        ),
    )
    assertDataFrameEqual(
        read_table(spark, dq_results_path(env)).select("run_id", "table", "expectation", "column", "success", "observed_value"),
        spark.createDataFrame(
            [
                ("gold-lane", "events", "expect_column_values_to_be_unique", "message_id", True, "0 of 2 unexpected (0.00%)"),
                ("gold-lane", "events", "expect_column_values_to_not_be_null", "currency", False, "2 of 2 unexpected (100.00%)"),
                # (10 + 30) / 2 = 20
                ("gold-lane", "events", "expect_column_mean_to_be_between", "price", True, "20.0"),
                # at most 4 bronze rows - 2 quarantined = 2; 2 stored
                ("gold-lane", "events", "expect_table_row_count_to_be_between", None, True, "2"),
            ],
            "run_id STRING, table STRING, expectation STRING, column STRING, success BOOLEAN, observed_value STRING",
        ),
    )  # fmt: skip
