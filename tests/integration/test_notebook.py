"""The lake-tour notebook runs top to bottom outside Databricks."""

from __future__ import annotations

import runpy
from pathlib import Path

import pytest

NOTEBOOK = Path(__file__).resolve().parents[2] / "notebooks" / "01_lake_tour.py"


@pytest.mark.integration
def test_lake_tour_notebook_runs_locally(spark, tmp_path, monkeypatch, capsys):
    assert NOTEBOOK.read_text().startswith("# Databricks notebook source\n")
    monkeypatch.setenv("CDPLAKE_WIDGET_LAKE_ROOT", str(tmp_path / "lake"))
    monkeypatch.setenv("CDPLAKE_WIDGET_CUSTOMERS", "30")

    # The notebook's build_session joins the test run's session (getOrCreate).
    namespace = runpy.run_path(str(NOTEBOOK), run_name="__main__")

    assert namespace["spark"] is spark
    summary = namespace["summary"]
    assert summary.lake_root == str(tmp_path / "lake")
    assert summary.customers > 0
    printed = capsys.readouterr().out
    assert "customers resolved:" in printed
    # the change-feed cell saw the inserts the first membership write made
    changes = namespace["changes"]
    assert changes.where("_change_type = 'insert'").count() == namespace["membership"].count()
