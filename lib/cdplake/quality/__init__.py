"""Data quality: reconciliation of row counts, row rules, dataset checks (Great Expectations)."""

from cdplake.quality.dataset import DatasetCheck, check_silver_table, dq_results_path
from cdplake.quality.reconcile import BatchCounts, ReconciliationError, reconcile
from cdplake.quality.rules import (
    RuleCounts,
    RuleOutcome,
    RuleViolationError,
    apply_rules,
    check_fail_rules,
    flag_rules,
    rule_counts,
    rule_reasons,
)

__all__ = [
    "BatchCounts",
    "DatasetCheck",
    "ReconciliationError",
    "RuleCounts",
    "RuleOutcome",
    "RuleViolationError",
    "apply_rules",
    "check_fail_rules",
    "check_silver_table",
    "dq_results_path",
    "flag_rules",
    "reconcile",
    "rule_counts",
    "rule_reasons",
]
