"""Row rules from ``conf/quality/<table>.yaml`` as Spark predicates, and the split they drive.

Each rule compiles to a ``Column`` that is true when the row passes and is never null.
**A null passes every rule except ``not_null``**: whether a value may be missing is the
``not_null`` rule's question, so a range, value-set, regex or SQL rule only judges values
that are there (an SQL expression that evaluates to null also passes). This keeps each
rule about one thing and avoids quarantining every row with an optional field unset.

:func:`apply_rules` adds one ``failed_rules`` ``ARRAY<STRING>`` column with a single
projection and derives the three outputs from it by filters, so a caller that persists
:attr:`RuleOutcome.checked` computes the rules once. :func:`rule_counts` is one aggregate
over that frame and :func:`check_fail_rules` raises from its result without touching
Spark again; inside ``foreachBatch``::

    outcome = apply_rules(batch, cfg.rules)
    checked = outcome.checked.persist()
    counts = rule_counts(outcome)      # the one aggregate
    check_fail_rules(counts)           # raises before anything is written
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from functools import reduce
from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from cdplake.config.quality import Rule

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

FAILED_RULES = "failed_rules"
#: Rules whose failure takes the row out of ``passed``.
BLOCKING_ACTIONS = ("quarantine", "fail")


class RuleViolationError(RuntimeError):
    """Rows failed one or more rules whose action is ``fail``: the batch must not be written."""

    def __init__(self, violations: Mapping[str, int], rows: int, table: str | None = None) -> None:
        self.violations = dict(violations)
        self.rows = rows
        self.table = table
        where = f" in {table}" if table else ""
        listed = ", ".join(f"{rid} ({n} of {rows} rows)" for rid, n in self.violations.items())
        super().__init__(f"fail rule(s) violated{where}: {listed}")


class RuleCompilationError(ValueError):
    """A rule does not compile against the frame's schema (unknown column, bad SQL)."""


@dataclass(frozen=True)
class RuleOutcome:
    """The split of a frame by its row rules; every frame is lazy.

    Attributes:
        checked: every input row plus ``failed_rules`` (ids in rule order, empty when the
            row passed everything). Persist this inside ``foreachBatch``.
        passed: rows that failed no ``quarantine`` or ``fail`` rule, input columns only
            (rows failing only ``warn`` rules are here).
        quarantined: rows that failed a ``quarantine`` or ``fail`` rule, input columns plus
            ``failed_rules`` (every failed id, warnings included).
        warnings: rows of ``passed`` that failed ``warn`` rules, input columns plus
            ``failed_rules`` (the warn ids only).
        rules: the rules applied.
    """

    checked: DataFrame
    passed: DataFrame
    quarantined: DataFrame
    warnings: DataFrame
    rules: tuple[Rule, ...]


@dataclass(frozen=True)
class RuleCounts:
    """How many rows failed each rule, from one aggregate.

    Attributes:
        rows: rows checked.
        failing: rule id -> failing rows, for every rule (zero included), in rule order.
        rules: the rules counted.
    """

    rows: int
    failing: Mapping[str, int]
    rules: tuple[Rule, ...]

    @property
    def passed_rules(self) -> tuple[str, ...]:
        """Ids of the rules no row failed."""
        return tuple(rid for rid, n in self.failing.items() if n == 0)

    @property
    def failed_rules(self) -> tuple[str, ...]:
        """Ids of the rules at least one row failed."""
        return tuple(rid for rid, n in self.failing.items() if n > 0)

    def __add__(self, other: RuleCounts) -> RuleCounts:
        """The counts of two batches checked with the same rules, summed."""
        if other.rules != self.rules:
            raise ValueError("cannot add rule counts of different rule sets")
        failing = {rid: n + other.failing[rid] for rid, n in self.failing.items()}
        return RuleCounts(rows=self.rows + other.rows, failing=failing, rules=self.rules)

    def violations(self, action: str = "fail") -> dict[str, int]:
        """Failing counts of the rules with ``action`` that at least one row failed."""
        return {r.id: self.failing[r.id] for r in self.rules if r.action == action and self.failing[r.id] > 0}


def _literal(value: object) -> Column:
    # A YAML date bound compared with a TIMESTAMP column: Spark widens the date to its
    # midnight in the session time zone (UTC here), which is the intended meaning.
    if isinstance(value, dt.datetime) and value.tzinfo is None:
        value = value.replace(tzinfo=dt.timezone.utc)
    return F.lit(value)


def _each(columns: Sequence[str], check) -> Column:
    return reduce(lambda a, b: a & b, [F.coalesce(check(F.col(c)), F.lit(True)) for c in columns])


def rule_predicate(rule: Rule) -> Column:
    """The rule as a Column that is true when a row passes; never null.

    A null value passes every kind except ``not_null`` (see the module docstring). With
    several columns a row passes when every column passes.

    Args:
        rule: a validated rule.
    """
    if rule.kind == "not_null":
        return reduce(lambda a, b: a & b, [F.col(c).isNotNull() for c in rule.columns])
    if rule.kind == "range":

        def in_range(col: Column) -> Column:
            checks = []
            if rule.min is not None:
                checks.append(col >= _literal(rule.min))
            if rule.max is not None:
                checks.append(col <= _literal(rule.max))
            return reduce(lambda a, b: a & b, checks)

        return _each(rule.columns, in_range)
    if rule.kind == "allowed_values":
        return _each(rule.columns, lambda col: col.isin(*rule.values))
    if rule.kind == "regex":
        return _each(rule.columns, lambda col: col.rlike(rule.pattern))
    if rule.kind == "sql":
        return F.coalesce(F.expr(rule.expr), F.lit(True))
    raise ValueError(f"rule {rule.id!r}: unknown kind {rule.kind!r}")


def failed_rules_column(rules: Sequence[Rule]) -> Column:
    """``ARRAY<STRING>`` of the ids of the rules a row fails, in rule order; empty when none.

    Args:
        rules: the rules to evaluate.
    """
    if not rules:
        return F.array().cast("array<string>")
    flags = F.array(*[F.when(~rule_predicate(r), F.lit(r.id)) for r in rules])
    return F.filter(flags, lambda rid: rid.isNotNull())


def _ids(rules: Sequence[Rule], actions: Sequence[str]) -> list[str]:
    return [r.id for r in rules if r.action in actions]


def _fails_any(ids: Sequence[str]) -> Column:
    if not ids:
        return F.lit(False)
    return F.exists(FAILED_RULES, lambda rid: rid.isin(*ids))


def _compile_check(df: DataFrame, rules: Sequence[Rule]) -> None:
    """Name the rule that does not compile against ``df`` (called only on failure)."""
    from pyspark.errors import AnalysisException

    for rule in rules:
        try:
            df.select(rule_predicate(rule).alias("ok")).schema  # noqa: B018 - forces analysis
        except AnalysisException as exc:
            raise RuleCompilationError(f"rule {rule.id!r} ({rule.kind}) does not compile: {exc}") from None


def apply_rules(df: DataFrame, rules: Sequence[Rule]) -> RuleOutcome:
    """Evaluate every rule in one projection and split the rows by the rules' actions.

    Nothing is computed here; see :func:`rule_counts` and :func:`check_fail_rules` for the
    ``fail`` rules.

    Args:
        df: rows to check (e.g. a conformed silver micro-batch).
        rules: the table's rules (``TableQuality.rules``).

    Returns:
        The lazy split; see :class:`RuleOutcome`.

    Raises:
        ValueError: ``df`` already has a ``failed_rules`` column or rule ids repeat.
        RuleCompilationError: a rule names an unknown column or its SQL does not compile.
    """
    from pyspark.errors import AnalysisException

    rules = tuple(rules)
    if FAILED_RULES in df.columns:
        raise ValueError(f"the frame already has a {FAILED_RULES!r} column")
    ids = [r.id for r in rules]
    if len(set(ids)) != len(ids):
        raise ValueError(f"rule ids repeat: {sorted({i for i in ids if ids.count(i) > 1})}")
    columns = df.columns
    try:
        checked = df.withColumn(FAILED_RULES, failed_rules_column(rules))
    except AnalysisException:
        _compile_check(df, rules)
        raise
    blocking = _fails_any(_ids(rules, BLOCKING_ACTIONS))
    warn_ids = _ids(rules, ("warn",))
    passed = checked.where(~blocking)
    warnings = passed.where(_fails_any(warn_ids)).select(
        *columns,
        F.filter(FAILED_RULES, lambda rid: rid.isin(*warn_ids) if warn_ids else F.lit(False)).alias(
            FAILED_RULES
        ),
    )
    return RuleOutcome(
        checked=checked,
        passed=passed.select(*columns),
        quarantined=checked.where(blocking),
        warnings=warnings,
        rules=rules,
    )


def flag_rules(df: DataFrame, rules: Sequence[Rule], *, only_where: Column | None = None) -> DataFrame:
    """Add ``failed_rules`` to ``df``: the ids of the rules each row fails, in rule order.

    The streaming build uses this instead of :func:`apply_rules` because it keeps one frame
    (conform reasons and rule failures side by side) and splits it once.

    Args:
        df: rows to check.
        rules: the table's rules.
        only_where: evaluate the rules only on rows where this is true; elsewhere
            ``failed_rules`` is null (e.g. rows the conform step already rejected, whose
            nulled fields would trip every ``not_null`` rule).

    Raises:
        ValueError: ``df`` already has a ``failed_rules`` column.
        RuleCompilationError: a rule names an unknown column or its SQL does not compile.
    """
    from pyspark.errors import AnalysisException

    if FAILED_RULES in df.columns:
        raise ValueError(f"the frame already has a {FAILED_RULES!r} column")
    failed = failed_rules_column(rules)
    if only_where is not None:
        failed = F.when(only_where, failed)
    try:
        return df.withColumn(FAILED_RULES, failed)
    except AnalysisException:
        _compile_check(df, rules)
        raise


def rule_reasons(rules: Sequence[Rule], actions: Sequence[str] = BLOCKING_ACTIONS) -> Column:
    """``rule:<id>`` for each failed rule whose action is in ``actions``, from ``failed_rules``.

    These are the quarantine reasons rule failures add; never null (empty when
    ``failed_rules`` is null or holds only other actions' ids).

    Args:
        rules: the rules behind ``failed_rules``.
        actions: which rules' failures to name (``quarantine`` and ``fail`` by default).
    """
    ids = _ids(rules, actions)
    if not ids:
        return F.array().cast("array<string>")
    named = F.transform(
        F.filter(F.col(FAILED_RULES), lambda rid: rid.isin(*ids)), lambda rid: F.concat(F.lit("rule:"), rid)
    )
    return F.coalesce(named, F.array().cast("array<string>"))


def rule_count_columns(rules: Sequence[Rule]) -> list[Column]:
    """Aggregate columns counting rows checked (``_rules_rows``) and failing each rule (``_r<i>``).

    Rows whose ``failed_rules`` is null (not evaluated) count nowhere. Combine with other
    aggregates in one ``agg`` and read the row with :func:`counts_from_row`.
    """
    return [F.count(FAILED_RULES).alias("_rules_rows")] + [
        F.count_if(F.coalesce(F.array_contains(FAILED_RULES, r.id), F.lit(False))).alias(f"_r{i}")
        for i, r in enumerate(rules)
    ]


def counts_from_row(row, rules: Sequence[Rule]) -> RuleCounts:
    """The :class:`RuleCounts` in an aggregate row holding :func:`rule_count_columns`."""
    rules = tuple(rules)
    failing = {r.id: int(row[f"_r{i}"] or 0) for i, r in enumerate(rules)}
    return RuleCounts(rows=int(row["_rules_rows"] or 0), failing=failing, rules=rules)


def rule_counts(outcome: RuleOutcome) -> RuleCounts:
    """Failing rows per rule (and rows checked) with one aggregate over ``outcome.checked``.

    Args:
        outcome: the result of :func:`apply_rules` (persist ``outcome.checked`` first when
            it is also written).
    """
    return counts_from_row(outcome.checked.agg(*rule_count_columns(outcome.rules)).first(), outcome.rules)


def check_fail_rules(counts: RuleCounts, table: str | None = None) -> None:
    """Raise when any row failed a rule whose action is ``fail``; no Spark work.

    Args:
        counts: from :func:`rule_counts`.
        table: named in the error message.

    Raises:
        RuleViolationError: naming each violated ``fail`` rule and its failing row count.
    """
    violations = counts.violations("fail")
    if violations:
        raise RuleViolationError(violations, counts.rows, table)


def quarantine_records(quarantined: DataFrame, quarantined_at: dt.datetime | None = None) -> DataFrame:
    """Quarantined rows in the lake's quarantine layout.

    ``record`` is the row (lineage excluded) as JSON, ``reasons`` the failed rule ids, and
    the lineage columns are carried when the frame has them.

    Args:
        quarantined: :attr:`RuleOutcome.quarantined`.
        quarantined_at: the time stamp; Spark's current timestamp by default.

    Returns:
        ``record, reasons, _source_file, _batch_id, _quarantined_at``.
    """
    lineage = ("_source_file", "_ingested_at", "_batch_id")
    data = [c for c in quarantined.columns if c not in (*lineage, FAILED_RULES)]

    def carried(name: str) -> Column:
        return F.col(name) if name in quarantined.columns else F.lit(None).cast("string")

    stamp = F.lit(quarantined_at) if quarantined_at else F.current_timestamp()
    return quarantined.select(
        F.to_json(F.struct(*data)).alias("record"),
        F.col(FAILED_RULES).alias("reasons"),
        carried("_source_file").alias("_source_file"),
        carried("_batch_id").alias("_batch_id"),
        stamp.cast("timestamp").alias("_quarantined_at"),
    )
