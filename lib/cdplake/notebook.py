"""Small helpers for notebooks that must run both on Databricks and locally."""

from __future__ import annotations

import os


def widget(name: str, default: str) -> str:
    """A notebook parameter: a Databricks widget when there is one, else ``CDPLAKE_WIDGET_<NAME>``.

    Args:
        name: the widget name.
        default: the value when neither a widget nor the environment variable is set.
    """
    try:  # Databricks runtimes ship pyspark.dbutils; open-source pyspark does not.
        from pyspark.dbutils import DBUtils  # type: ignore[import-not-found]
        from pyspark.sql import SparkSession

        widgets = DBUtils(SparkSession.getActiveSession()).widgets
        widgets.text(name, default)
        return str(widgets.get(name))
    except ImportError:
        return os.environ.get(f"CDPLAKE_WIDGET_{name.upper()}", default)
