"""The run summary `make run` prints."""

from __future__ import annotations

import datetime as dt

from cdplake.config import load_env
from cdplake.pipeline import PipelineSummary, StepResult, default_as_of


def test_render_lists_steps_tables_quarantine_customers_and_segments():
    summary = PipelineSummary(
        run_id="run_1",
        env_name="local",
        lake_root="/tmp/lake",
        as_of=dt.datetime(2026, 11, 2, tzinfo=dt.timezone.utc),
        steps=(StepResult("bronze", 2.0, 1000, "3 new files"), StepResult("silver", 4.0, 1000)),
        table_rows={("bronze", "events"): 1000, ("silver", "events"): 990},
        quarantine_reasons={"events": {"malformed_json": 4, "missing_message_id": 6}, "crm": {}},
        customers=42,
        segment_sizes={"recent_purchasers": 7},
        segment_excluded={"recent_purchasers": 2},
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
        "layer       table                      rows",
        "bronze      events                    1,000",
        "silver      events                      990",
        "",
        "quarantined rows by reason:",
        "  events   missing_message_id                  6",
        "  events   malformed_json                      4",
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
