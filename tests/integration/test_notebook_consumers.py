"""The consumers notebook runs top to bottom outside Databricks.

It runs once per test session, as the ``two_wave_stream`` fixture (conftest.py), whose lake
the stream-pipeline and crash tests also use.
"""

from __future__ import annotations

from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "02_consumers.py"


@pytest.mark.integration
def test_consumers_notebook_runs_locally(spark, two_wave_stream):
    assert NOTEBOOK.read_text().startswith("# Databricks notebook source\n")
    namespace = two_wave_stream.notebook

    assert namespace["spark"] is spark
    # wave 1 rebuilt everyone, wave 2 only the customers it touched
    assert [(c.cycle_id, c.full_rebuild) for c in namespace["cycles"]] == [(1, True), (2, False)]
    # the second outbox run added nothing
    assert namespace["outbox_rows"] == namespace["outbox_rows_again"] > 0
    exported = {e.segment_id: e for e in namespace["exports"]}
    # one export per segment of conf/segments.yaml, empty segments included
    assert set(exported) == {
        "recent_purchasers",
        "cart_abandoners",
        "frequent_browsers",
        "highly_engaged",
        "lapsing_customers",
        "vip_rfm",
        "win_back",
        "browsing_now",
    }
    for item in exported.values():
        assert all(Path(f).is_file() for f in item.files)
