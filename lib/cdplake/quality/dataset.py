"""Dataset-level checks of a silver table after its stream ran, recorded in ``quality/dq_results``.

The silver build calls :func:`check_silver_table` once per run and table, after the
``availableNow`` stream has finished and only when it wrote at least one batch (with a
processing-time trigger there is no end of run, so it is called per micro-batch instead).
It validates the **whole** table with the table's Great Expectations suite from
``conf/quality/<table>.yaml`` plus two row-count expectations derived from the run:

- ``expect_table_row_count_to_equal``: rows before the run + rows the run's MERGEs
  inserted (the reconciled counts), so the table holds exactly what the batches reported;
- ``expect_table_row_count_to_be_between`` up to bronze rows − quarantined rows of the
  source: every bronze row ends in at most one silver row or one quarantine row.

Failed expectations are recorded and reported, not raised: the data is already committed
and the checks are about the dataset, not a batch (row rules with action ``fail`` and
reconciliation are what stop a batch).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import TYPE_CHECKING

from cdplake.config.quality import ExpectationConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdplake.config import EnvConfig

RESULTS_LAYER = "quality"
RESULTS_TABLE = "dq_results"


def dq_results_path(env: EnvConfig) -> str:
    """Where the data-quality results Delta table lives (``delta/quality/dq_results``)."""
    return env.paths.table(RESULTS_LAYER, RESULTS_TABLE)


@dataclass(frozen=True)
class DatasetCheck:
    """The outcome of one table's suite in one run.

    Attributes:
        table: the silver table.
        expectations: how many expectations ran.
        failed: ``expectation(column): observed`` of each failed one, sorted.
    """

    table: str
    expectations: int = 0
    failed: tuple[str, ...] = ()

    @property
    def passed(self) -> int:
        """Expectations that held."""
        return self.expectations - len(self.failed)


def describe_failure(expectation: str, column: str | None, observed: str | None) -> str:
    """``expect_x(column): observed`` for summaries (the column part only when there is one)."""
    target = f"({column})" if column else ""
    return f"{expectation}{target}: {observed if observed is not None else 'n/a'}"


def row_count(spark: SparkSession, path: str) -> int:
    """Rows of the Delta table at ``path``, 0 when there is none (answered from the log's stats)."""
    from cdplake.io.delta import read_table, table_exists

    return read_table(spark, path).count() if table_exists(spark, path) else 0


def check_silver_table(
    spark: SparkSession,
    env: EnvConfig,
    table: str,
    suite: tuple[ExpectationConfig, ...],
    run_id: str,
    *,
    expected_rows: int | None = None,
    max_rows: int | None = None,
    txn: tuple[str, int] | None = None,
    checked_at: dt.datetime | None = None,
) -> DatasetCheck:
    """Validate ``silver/<table>`` with its suite and append the results to ``dq_results``.

    Args:
        spark: the session.
        env: the environment (paths).
        table: the silver table.
        suite: its expectations (``TableQuality.expectations``).
        run_id: stamped on each result row.
        expected_rows: the row count the run's MERGE metrics imply.
        max_rows: bronze rows minus quarantined rows.
        txn: ``(app_id, version)`` when called from a ``foreachBatch``.
        checked_at: the check time; now by default.

    Returns:
        How many expectations ran and which failed.
    """
    from cdplake.io.delta import read_table
    from cdplake.quality.expectations import failed_expectations, run_expectations, write_results

    frame = read_table(spark, env.paths.table("silver", table))
    results = run_expectations(
        frame, table, suite, run_id, expected_rows, max_rows=max_rows, checked_at=checked_at
    ).persist()
    try:
        write_results(results, dq_results_path(env), txn=txn)
        failed = tuple(sorted(describe_failure(*f) for f in failed_expectations(results)))
        return DatasetCheck(table, results.count(), failed)
    finally:
        results.unpersist()
