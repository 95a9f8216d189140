"""The end-to-end run: landing → bronze → silver → identity → gold, and its summary.

This is what `make run` and `jobs/run_pipeline.py` call. Each step is a library function of
its own layer; this module only sequences them, times them and reports what they did.
"""

from __future__ import annotations

import datetime as dt
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from cdplake.cli import new_run_id
from cdplake.config import EnvConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

    from cdplake.quality.dataset import DatasetCheck

# (layer, table) pairs reported in the summary, in data-flow order.
SOURCES = ("events", "email", "crm", "orders")
SILVER_TABLES = ("events", "email_events", "crm_contacts", "crm_contacts_history", "orders")
IDENTITY_TABLES = (
    "identifiers",
    "probabilistic_edges",
    "customer_map",
    "record_customer",
    "customer_links",
    "identity_changes",
)
GOLD_TABLES = ("customer_profile", "customer_profile_history", "segment_membership", "segment_summary")
QUALITY_TABLES = ("dq_results",)


@dataclass(frozen=True)
class StepResult:
    """One pipeline step: how long it took and how many rows it processed."""

    name: str
    seconds: float
    rows: int
    detail: str = ""

    @property
    def rows_per_second(self) -> float:
        return self.rows / self.seconds if self.seconds > 0 else 0.0


@dataclass(frozen=True)
class TableQualityResult:
    """The quality checks one silver table went through in a run.

    Attributes:
        table: the silver table.
        rules: row rules applied to each batch.
        rule_failures: ``(rule id, action, rows failing)`` of the rules some row failed.
        checks: Great Expectations outcomes (the table, then its history when it has one).
    """

    table: str
    rules: int = 0
    rule_failures: tuple[tuple[str, str, int], ...] = ()
    checks: tuple[DatasetCheck, ...] = ()


@dataclass(frozen=True)
class PipelineSummary:
    """What a run did, for people (``render``) and for tests and benchmarks (the fields)."""

    run_id: str
    env_name: str
    lake_root: str
    as_of: dt.datetime
    steps: tuple[StepResult, ...]
    table_rows: dict[tuple[str, str], int]
    quarantine_reasons: dict[str, dict[str, int]]
    customers: int
    segment_sizes: dict[str, int]
    segment_excluded: dict[str, int] = field(default_factory=dict)
    quality: tuple[TableQualityResult, ...] = ()

    @property
    def total_seconds(self) -> float:
        return sum(s.seconds for s in self.steps)

    def render(self) -> str:
        """A short, plain-text report of the run."""
        lines = [
            f"cdplake run {self.run_id} (env {self.env_name}, as of {self.as_of:%Y-%m-%d %H:%M} UTC)",
            f"lake: {self.lake_root}",
            "",
            f"{'step':<10} {'seconds':>8} {'rows':>10} {'rows/s':>10}  detail",
        ]
        for s in self.steps:
            lines.append(
                f"{s.name:<10} {s.seconds:>8.1f} {s.rows:>10,} {s.rows_per_second:>10,.0f}  {s.detail}"
            )
        lines.append(f"{'total':<10} {self.total_seconds:>8.1f}")
        lines += ["", f"{'layer':<11} {'table':<26} {'rows':>10}"]
        for (layer, table), rows in self.table_rows.items():
            lines.append(f"{layer:<11} {table:<26} {rows:>10,}")
        lines += ["", "quarantined rows by reason:"]
        if not any(self.quarantine_reasons.values()):
            lines.append("  none")
        for source, reasons in self.quarantine_reasons.items():
            for reason, rows in sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0])):
                lines.append(f"  {source:<8} {reason:<28} {rows:>8,}")
        lines += self._render_quality()
        lines += ["", f"customers resolved: {self.customers:,}", "", "segments:"]
        for seg, size in self.segment_sizes.items():
            excluded = self.segment_excluded.get(seg, 0)
            lines.append(f"  {seg:<24} {size:>8,} members  ({excluded:,} left out for lack of consent)")
        return "\n".join(lines)

    def _render_quality(self) -> list[str]:
        lines = ["", "row rules (tables with new rows this run):"]
        if not self.quality:
            lines.append("  none run")
        for q in self.quality:
            failed = len(q.rule_failures)
            lines.append(f"  {q.table:<20} {q.rules - failed:>3} passed {failed:>3} failed")
            for rule_id, action, rows in q.rule_failures:
                lines.append(f"    {rule_id:<38} {action:<10} {rows:>8,} rows")
        lines += ["", "dataset checks (Great Expectations, quality/dq_results):"]
        checks = [c for q in self.quality for c in q.checks]
        if not checks:
            lines.append("  none run")
        for c in checks:
            lines.append(f"  {c.table:<20} {c.passed:>3} of {c.expectations} passed")
            lines += [f"    failed {f}" for f in c.failed]
        return lines


def _timed(name: str, fn: Callable[[], Any], rows_of: Callable[[Any], int], detail_of=None):
    start = time.perf_counter()
    out = fn()
    seconds = time.perf_counter() - start
    detail = detail_of(out) if detail_of else ""
    return out, StepResult(name=name, seconds=seconds, rows=rows_of(out), detail=detail)


def default_as_of(env: EnvConfig, generated: bool) -> dt.datetime:
    """The clock the gold layer evaluates windows against.

    For generated demo data the demo world's "now" is the day after ``demo.end_date`` so the
    30-day and 7-day windows see data whatever the calendar says; otherwise the configured
    ``pipeline.run_date`` or the real clock.
    """
    if generated:
        day = env.demo.end_date + dt.timedelta(days=1)
    elif env.pipeline.run_date is not None:
        day = env.pipeline.run_date + dt.timedelta(days=1)
    else:
        return dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    return dt.datetime(day.year, day.month, day.day, tzinfo=dt.timezone.utc)


def run_pipeline(
    spark: SparkSession,
    env: EnvConfig,
    *,
    generate: bool = False,
    run_id: str | None = None,
    as_of: dt.datetime | None = None,
) -> PipelineSummary:
    """Run every layer once over whatever is new in the landing zone.

    Args:
        spark: the session (from :func:`cdplake.io.session.build_session`).
        env: the environment; all paths come from ``env.paths``.
        generate: first generate the seeded demo data and land it (with ground truth).
        run_id: stamped on every row written; a fresh one by default.
        as_of: the clock for time windows; see :func:`default_as_of`.

    Returns:
        The run's summary; ``summary.render()`` is what `make run` prints.
    """
    from cdplake.bronze import ingest_all
    from cdplake.identity import resolve_identities, score_for_pipeline
    from cdplake.landing import generate as generate_demo
    from cdplake.landing import write_landing
    from cdplake.segments import build_gold
    from cdplake.silver import build_silver

    run_id = run_id or new_run_id()
    as_of = as_of or default_as_of(env, generate)
    steps: list[StepResult] = []

    if generate:
        data, step = _timed(
            "generate",
            lambda: generate_demo(env.demo),
            lambda d: len(d.ground_truth),
            lambda d: f"{env.demo.customers:,} people, {env.demo.days} days",
        )
        steps.append(step)
        _, step = _timed(
            "land",
            lambda: write_landing(env, data),
            lambda files: sum(files.values()),
            lambda files: "files: " + ", ".join(f"{k} {v}" for k, v in sorted(files.items())),
        )
        steps.append(step)

    _, step = _timed(
        "bronze",
        lambda: ingest_all(spark, env, run_id),
        lambda res: sum(r.rows for r in res.values()),
        lambda res: f"{sum(r.files for r in res.values())} new files",
    )
    steps.append(step)

    silver, step = _timed(
        "silver",
        lambda: build_silver(spark, env, run_id),
        lambda res: sum(r.rows_in for r in res.values()),
        lambda res: (
            f"out {sum(r.rows_out for r in res.values()):,}, "
            f"quarantined {sum(r.rows_quarantined for r in res.values()):,}, "
            f"deduplicated {sum(r.rows_deduplicated for r in res.values()):,}, "
            f"late {sum(r.rows_late for r in res.values()):,}"
        ),
    )
    steps.append(step)

    # Probabilistic pairs for the identity step: the latest model, new or changed records only.
    # The demo trains its model on its first run; otherwise models come from their own job.
    (_, step) = _timed(
        "linkage",
        lambda: score_for_pipeline(spark, env, run_id, train_if_missing=generate),
        lambda out: out[0].records if out[0] else 0,
        lambda out: (
            out[1]
            + (
                f"{out[0].mode}, model {out[0].model_version}, {out[0].edges_written:,} pairs ({out[0].links:,} links)"
                if out[0]
                else ""
            )
        ),
    )
    steps.append(step)

    identity, step = _timed(
        "identity",
        lambda: resolve_identities(spark, env, run_id),
        lambda res: res.records,
        lambda res: (
            f"{res.identifiers:,} identifiers, {res.blocked:,} blocked, id changes "
            + (", ".join(f"{k} {v:,}" for k, v in sorted(res.id_changes.items())) or "none")
            + (
                ", probabilistic links " + ", ".join(f"{k} {v:,}" for k, v in res.probabilistic_links.items())
                if res.probabilistic_links
                else ""
            )
        ),
    )
    steps.append(step)

    gold, step = _timed(
        "gold",
        lambda: build_gold(spark, env, run_id, as_of),
        lambda res: res.profiles,
        lambda res: f"{len(res.segment_sizes)} segments",
    )
    steps.append(step)

    return PipelineSummary(
        run_id=run_id,
        env_name=env.name,
        lake_root=env.storage.root,
        as_of=as_of,
        steps=tuple(steps),
        table_rows=table_row_counts(spark, env),
        quarantine_reasons=quarantine_reasons(spark, env),
        customers=identity.customers,
        segment_sizes=dict(gold.segment_sizes),
        segment_excluded=dict(gold.excluded),
        quality=quality_results(env, silver),
    )


def quality_results(env: EnvConfig, silver: dict) -> tuple[TableQualityResult, ...]:
    """What the silver build's rules and dataset checks found, per table that had new rows.

    Args:
        env: the environment (its ``conf/quality``).
        silver: ``build_silver``'s results.
    """
    from cdplake.silver.build import table_quality

    out = []
    for name, result in silver.items():
        if not result.batches:
            continue
        cfg = table_quality(env, name)
        rules = len(cfg.rules) if cfg else 0
        out.append(TableQualityResult(name, rules, tuple(result.rule_failures), tuple(result.checks)))
    return tuple(out)


def _layer_tables() -> list[tuple[str, str]]:
    return (
        [("bronze", s) for s in SOURCES]
        + [("silver", t) for t in SILVER_TABLES]
        + [("quarantine", s) for s in SOURCES]
        + [("identity", t) for t in IDENTITY_TABLES]
        + [("gold", t) for t in GOLD_TABLES]
        + [("quality", t) for t in QUALITY_TABLES]
    )


def table_row_counts(spark: SparkSession, env: EnvConfig) -> dict[tuple[str, str], int]:
    """Rows in every table of the lake that exists (absent tables are left out)."""
    from cdplake.io.delta import read_table, table_exists

    counts: dict[tuple[str, str], int] = {}
    for layer, name in _layer_tables():
        path = env.paths.table(layer, name)
        if table_exists(spark, path):
            counts[(layer, name)] = read_table(spark, path).count()
    return counts


def quarantine_reasons(spark: SparkSession, env: EnvConfig) -> dict[str, dict[str, int]]:
    """Quarantined rows per source and reason (a row with two reasons counts under both)."""
    from pyspark.sql import functions as F

    from cdplake.io.delta import read_table, table_exists

    out: dict[str, dict[str, int]] = {}
    for source in SOURCES:
        path = env.paths.table("quarantine", source)
        if not table_exists(spark, path):
            continue
        rows = (
            read_table(spark, path)
            .select(F.explode("reasons").alias("reason"))
            .groupBy("reason")
            .count()
            .collect()
        )
        out[source] = {r["reason"]: int(r["count"]) for r in rows}
    return out
