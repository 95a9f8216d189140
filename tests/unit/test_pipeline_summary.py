"""The run summary `make run` prints."""

from __future__ import annotations

import datetime as dt

from cdplake.config import load_env
from cdplake.pipeline import PipelineSummary, StepResult, TableQualityResult, default_as_of
from cdplake.quality.dataset import DatasetCheck


def test_render_lists_steps_tables_quarantine_quality_customers_and_segments():
    summary = PipelineSummary(
        run_id="run_1",
        env_name="local",
        lake_root="/tmp/lake",
        as_of=dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc),
        steps=(StepResult("bronze", 2.0, 1000, "3 new files"), StepResult("silver", 4.0, 1000)),
        table_rows={("bronze", "events"): 1000, ("silver", "events"): 990},
        quarantine_reasons={
            "events": {"malformed_json": 4, "missing_message_id": 6, "rule:events_price_non_negative": 2},
            "crm": {},
        },
        customers=42,
        segment_sizes={"recent_purchasers": 7},
        segment_excluded={"recent_purchasers": 2},
        quality=(
            TableQualityResult(
                "events",
                12,
                (("events_price_non_negative", "quarantine", 2), ("events_page_has_url", "warn", 1500)),
                (DatasetCheck("events", 10, ("expect_column_mean_to_be_between(price): 4.5",)),),
            ),
            TableQualityResult("crm_contacts", 11, (), (DatasetCheck("crm_contacts", 8),)),
        ),
    )
    # rows/s: 1000 rows / 2.0 s = 500; 1000 / 4.0 = 250. Reasons sorted by count, descending.
    assert summary.render().splitlines() == [
        "cdplake run run_1 (env local, as of 2026-11-02 00:00 UTC)",
        "lake: /tmp/lake",
        "",
        "step        seconds       rows     rows/s  detail",
        "bronze          2.0      1,000        500  3 new files",
        "silver          4.0      1,000        250  ",
        "total           6.0",
        "",
        "layer       table                            rows",
        "bronze      events                          1,000",
        "silver      events                            990",
        "",
        "quarantined rows by reason:",
        "  events   missing_message_id                  6",
        "  events   malformed_json                      4",
        "  events   rule:events_price_non_negative        2",
        "",
        # 12 rules, 2 failed = 10 passed; 11 rules, none failed
        "row rules (tables with new rows this run):",
        "  events                10 passed   2 failed",
        "    events_price_non_negative              quarantine        2 rows",
        "    events_page_has_url                    warn          1,500 rows",
        "  crm_contacts          11 passed   0 failed",
        "",
        # 10 expectations, 1 failed = 9 passed
        "dataset checks (Great Expectations, quality/dq_results):",
        "  events                 9 of 10 passed",
        "    failed expect_column_mean_to_be_between(price): 4.5",
        "  crm_contacts           8 of 8 passed",
        "",
        "customers resolved: 42",
        "",
        "segments:",
        "  recent_purchasers               7 members  (2 left out for lack of consent)",
    ]


def test_demo_runs_are_evaluated_the_day_after_the_demo_ends():
    env = load_env("local", environ={"CDPLAKE__DEMO__END_DATE": "2026-10-31"})
    assert default_as_of(env, generated=True) == dt.datetime(2026, 11, 1, tzinfo=dt.timezone.utc)
    env = load_env("local", environ={"CDPLAKE__PIPELINE__RUN_DATE": "2026-09-30"})
    assert default_as_of(env, generated=False) == dt.datetime(2026, 10, 1, tzinfo=dt.timezone.utc)


def test_render_says_when_no_quality_checks_ran():
    summary = PipelineSummary(
        run_id="run_2",
        env_name="local",
        lake_root="/tmp/lake",
        as_of=dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc),
        steps=(),
        table_rows={},
        quarantine_reasons={},
        customers=0,
        segment_sizes={},
    )
    lines = summary.render().splitlines()
    start = lines.index("row rules (tables with new rows this run):")
    assert lines[start : start + 5] == [
        "row rules (tables with new rows this run):",
        "  none run",
        "",
        "dataset checks (Great Expectations, quality/dq_results):",
        "  none run",
    ]
