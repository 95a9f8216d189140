"""Dataset checks with Great Expectations 1.x over Spark DataFrames, and their Data Docs.

Each silver table's suite is declared in ``conf/quality/<table>.yaml`` under
``expectations:`` (see :mod:`cdplake.config.quality`). :func:`run_expectations` validates a
DataFrame against it in an ephemeral GX context (a Spark datasource over an in-memory
dataframe asset) and returns one row per expectation; :func:`write_results` appends those
rows to a Delta table. :func:`build_data_docs` validates with a file-backed context under
the output folder and renders GX Data Docs there (``make dq-docs``).

Results carry counts, never sample values: silver holds personal data (emails, phones)
that must not be copied into the results table or the HTML docs, so GX is asked for no
partial unexpected lists.

GX is imported lazily (it takes seconds) with its usage analytics off and its progress bars
and INFO logging silenced.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from cdplake.config.model import ConfigError
from cdplake.config.quality import ExpectationConfig

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

RESULTS_SCHEMA = (
    "run_id STRING, table STRING, expectation STRING, column STRING, success BOOLEAN, "
    "observed_value STRING, details STRING, checked_at TIMESTAMP"
)
#: Counts and observed values only: no sample values of personal data (see module docstring).
RESULT_FORMAT: dict[str, Any] = {"result_format": "BASIC", "partial_unexpected_count": 0}
DOCS_SITE = "cdplake"
_BATCH = "whole_frame"
# GX keeps its current project context in a module global that get_context() replaces, so
# suites of tables checked side by side (cdplake.io.concurrent) run one at a time.
_GX_LOCK = threading.Lock()


@dataclass(frozen=True)
class DataDocs:
    """What :func:`build_data_docs` wrote.

    Attributes:
        index: the ``index.html`` of the docs site.
        success: table -> whether its whole suite passed.
    """

    index: Path
    success: Mapping[str, bool]


def _gx():
    """Import great_expectations with analytics off and its chatter down."""
    os.environ.setdefault("GX_ANALYTICS_ENABLED", "false")
    import great_expectations as gx

    logging.getLogger("great_expectations").setLevel(logging.WARNING)
    return gx


def _quiet(context) -> None:
    from great_expectations.data_context.types.base import ProgressBarsConfig

    context.variables.progress_bars = ProgressBarsConfig(globally=False, metric_calculations=False)


def build_expectations(
    table: str,
    expectations: Sequence[ExpectationConfig],
    expected_rows: int | None = None,
    max_rows: int | None = None,
) -> list:
    """The table's suite as GX expectation objects (no data context needed).

    Args:
        table: names the suite.
        expectations: the table's ``TableQuality.expectations``.
        expected_rows: when given, adds ``expect_table_row_count_to_equal`` with this value
            (e.g. bronze rows in minus quarantined and deduplicated).
        max_rows: when given, adds ``expect_table_row_count_to_be_between`` with this
            ``max_value`` (e.g. bronze rows minus quarantined rows: no more can reach silver).

    Raises:
        ConfigError: an unknown expectation type or arguments its class rejects, naming the
            table and the expectation.
    """
    _gx()
    from great_expectations.exceptions import ExpectationNotFoundError
    from great_expectations.expectations.registry import get_expectation_impl

    built = []
    configs = list(expectations)
    if expected_rows is not None:
        configs.append(
            ExpectationConfig(
                type="expect_table_row_count_to_equal",
                kwargs={"value": int(expected_rows)},
                description="rows expected from the upstream layer",
            )
        )
    if max_rows is not None:
        configs.append(
            ExpectationConfig(
                type="expect_table_row_count_to_be_between",
                kwargs={"min_value": 0, "max_value": int(max_rows)},
                description="no more rows than the upstream layer holds, quarantine excluded",
            )
        )
    for i, cfg in enumerate(configs):
        label = f"quality/{table}.yaml: expectations[{i}] ({cfg.type})"
        try:
            cls = get_expectation_impl(cfg.type)
        except ExpectationNotFoundError:
            raise ConfigError(f"{label}: Great Expectations has no expectation {cfg.type!r}") from None
        kwargs = dict(cfg.kwargs)
        if cfg.description:
            kwargs.setdefault("description", cfg.description)
        try:
            built.append(cls(**kwargs))
        except Exception as exc:  # pydantic's ValidationError, or a TypeError on bad kwargs
            raise ConfigError(f"{label}: invalid arguments {kwargs!r}: {exc}") from None
    return built


def _validate(context, df: DataFrame, table: str, expectations: list, run_id: str, run_time: dt.datetime):
    """Validate ``df`` against ``expectations`` in ``context``; the result goes to its stores."""
    gx = _gx()
    from great_expectations.core.run_identifier import RunIdentifier

    name = f"silver_{table}"
    # persist=False: GX would cache the frame and never release it; callers decide.
    datasource = context.data_sources.add_or_update_spark(name=name, persist=False)
    asset = datasource.add_dataframe_asset(name=table)
    batch_definition = asset.add_batch_definition_whole_dataframe(_BATCH)
    suite = context.suites.add_or_update(gx.ExpectationSuite(name=table, expectations=expectations))
    validation = context.validation_definitions.add_or_update(
        gx.ValidationDefinition(name=name, data=batch_definition, suite=suite)
    )
    return validation.run(
        batch_parameters={"dataframe": df},
        result_format=RESULT_FORMAT,
        run_id=RunIdentifier(run_name=run_id, run_time=run_time),
    )


def _observed(result: Mapping[str, Any]) -> str | None:
    if "observed_value" in result:
        value = result["observed_value"]
        if value is None:
            return None
        return value if isinstance(value, str) else json.dumps(value, default=str, sort_keys=True)
    if "unexpected_count" in result:
        return (
            f"{result['unexpected_count']} of {result.get('element_count')} unexpected "
            f"({float(result.get('unexpected_percent') or 0.0):.2f}%)"
        )
    return None


def _exception_message(info: Mapping[str, Any] | None) -> str | None:
    """GX gives either one exception record or one per failed metric; join their messages."""
    if not info:
        return None
    records = [info] if "raised_exception" in info else [v for v in info.values() if isinstance(v, Mapping)]
    messages = [str(r.get("exception_message")) for r in records if r.get("raised_exception")]
    return "; ".join(messages) or None


def _result_rows(validation_result, run_id: str, table: str, checked_at: dt.datetime) -> list[tuple]:
    rows = []
    for res in validation_result.results:
        d = res.to_json_dict()
        config = d.get("expectation_config") or {}
        kwargs = {k: v for k, v in (config.get("kwargs") or {}).items() if k != "batch_id"}
        result = d.get("result") or {}
        details: dict[str, Any] = {"kwargs": kwargs, "result": result}
        exception = _exception_message(d.get("exception_info"))
        if exception:
            details["exception"] = exception
        column = kwargs.get("column")
        rows.append(
            (
                run_id,
                table,
                config.get("type"),
                str(column) if column is not None else None,
                bool(d.get("success")),
                _observed(result),
                json.dumps(details, default=str, sort_keys=True),
                checked_at,
            )
        )
    return rows


def run_expectations(
    df: DataFrame,
    table: str,
    suite_cfg: Sequence[ExpectationConfig],
    run_id: str,
    expected_rows: int | None = None,
    *,
    max_rows: int | None = None,
    checked_at: dt.datetime | None = None,
) -> DataFrame:
    """Validate ``df`` with the table's expectation suite; one result row per expectation.

    Runs in an ephemeral GX context over the frame as given. GX computes its metrics in a
    few Spark jobs over ``df``; persist it first when it is expensive to recompute (a
    ``foreachBatch`` micro-batch).

    Args:
        df: the rows to check (a silver table or micro-batch).
        table: the silver table, stamped on each row and naming the suite.
        suite_cfg: the table's ``TableQuality.expectations``.
        run_id: the pipeline run id, stamped on each row.
        expected_rows: adds ``expect_table_row_count_to_equal`` (rows expected from bronze).
        max_rows: adds ``expect_table_row_count_to_be_between`` up to this many rows.
        checked_at: the check time (UTC); now by default. Injected by tests.

    Returns:
        ``run_id, table, expectation, column, success, observed_value, details,
        checked_at`` (see :data:`RESULTS_SCHEMA`); ``details`` is JSON with the expectation's
        arguments, GX's result counts and any exception message.

    Raises:
        ConfigError: the suite names an unknown expectation or bad arguments.
    """
    gx = _gx()
    stamp = checked_at or dt.datetime.now(dt.timezone.utc)
    expectations = build_expectations(table, suite_cfg, expected_rows, max_rows)
    with _GX_LOCK:
        context = gx.get_context(mode="ephemeral")
        _quiet(context)
        result = _validate(context, df, table, expectations, run_id, stamp)
    rows = _result_rows(result, run_id, table, stamp)
    return df.sparkSession.createDataFrame(rows, RESULTS_SCHEMA)


def write_results(results: DataFrame, path: str, *, txn: tuple[str, int] | None = None) -> None:
    """Append result rows to the Delta table at ``path`` (created on the first write).

    Args:
        results: from :func:`run_expectations`.
        path: e.g. ``env.paths.table("quality", "dq_results")``.
        txn: ``(app_id, version)`` when written from a ``foreachBatch``: a replayed
            micro-batch does not append its results twice.
    """
    from cdplake.io.delta import append_bookkeeping

    # A stream appends results every cycle: the table is compacted as it grows.
    app_id, version = txn if txn is not None else (None, None)
    append_bookkeeping(results, path, app_id=app_id, version=version)


def failed_expectations(results: DataFrame) -> list[tuple[str, str | None, str | None]]:
    """``(expectation, column, observed_value)`` of the failed rows, for summaries and logs.

    Args:
        results: from :func:`run_expectations` (small: one row per expectation).
    """
    return [
        (r["expectation"], r["column"], r["observed_value"])
        for r in results.where("NOT success").orderBy("table", "expectation", "column").collect()
    ]


def build_data_docs(
    frames: Mapping[str, DataFrame],
    suites: Mapping[str, Sequence[ExpectationConfig]],
    out_dir: str | Path,
    *,
    run_id: str | None = None,
    expected_rows: Mapping[str, int] | None = None,
) -> Path:
    """Validate each frame with its suite and render GX Data Docs into ``out_dir``.

    A file-backed GX project lives in ``out_dir/gx`` and keeps earlier validations, so the
    docs index lists every run built into the same folder.

    Args:
        frames: table -> the rows to validate.
        suites: table -> its expectations; tables without a suite are skipped.
        out_dir: local folder for the HTML (``index.html`` at its top).
        run_id: names the validation run; a time-based id by default.
        expected_rows: table -> expected row count, as in :func:`run_expectations`.

    Returns:
        The index page and each table's overall outcome.
    """
    gx = _gx()
    out = Path(out_dir).resolve()
    out.mkdir(parents=True, exist_ok=True)
    context = gx.get_context(mode="file", project_root_dir=str(out))
    _quiet(context)
    site = {
        "class_name": "SiteBuilder",
        "site_index_builder": {"class_name": "DefaultSiteIndexBuilder"},
        "store_backend": {"class_name": "TupleFilesystemStoreBackend", "base_directory": str(out)},
    }
    if DOCS_SITE in (context.get_config().data_docs_sites or {}):
        context.update_data_docs_site(DOCS_SITE, site)
    else:
        context.add_data_docs_site(DOCS_SITE, site)
    now = dt.datetime.now(dt.timezone.utc)
    run = run_id or now.strftime("dq_%Y%m%dT%H%M%SZ")
    success = {}
    for table, df in frames.items():
        if table not in suites:
            continue
        expectations = build_expectations(table, suites[table], (expected_rows or {}).get(table))
        success[table] = bool(_validate(context, df, table, expectations, run, now).success)
    context.build_data_docs(site_names=[DOCS_SITE])
    return DataDocs(index=out / "index.html", success=success)


def main(argv: Sequence[str] | None = None) -> None:
    """``python -m cdplake.quality.expectations --env local --out .lake/dq_docs``.

    Reads every silver table that has a ``conf/quality/<table>.yaml`` and exists in the
    environment's lake, writes the Data Docs and prints each table's outcome.
    """
    from cdplake.cli import job_parser, load_from_args, new_run_id
    from cdplake.config.quality import load_quality_configs
    from cdplake.io.delta import read_table, table_exists
    from cdplake.io.session import build_session

    parser = job_parser("Great Expectations Data Docs over the silver tables")
    parser.add_argument("--out", default=".lake/dq_docs", help="folder for the Data Docs HTML")
    args = parser.parse_args(argv)
    cfg = load_from_args(args)
    configs = load_quality_configs(cfg.conf_dir)
    spark = build_session(cfg, app_name="cdplake-dq-docs")
    frames = {}
    for table in configs:
        path = cfg.paths.table("silver", table)
        if table_exists(spark, path):
            frames[table] = read_table(spark, path)
        else:
            print(f"skip {table}: no Delta table at {path} (run `make run` first)", flush=True)
    if not frames:
        raise SystemExit("no silver tables to check")
    run_id = args.run_id or new_run_id()
    docs = build_data_docs(frames, {t: c.expectations for t, c in configs.items()}, args.out, run_id=run_id)
    for table, ok in docs.success.items():
        print(f"{table:<21} {'passed' if ok else 'FAILED'}", flush=True)
    print(f"Data Docs: {docs.index}", flush=True)


if __name__ == "__main__":
    main()
