"""Data quality: reconciliation of row counts (row rules come later)."""

from cdplake.quality.reconcile import BatchCounts, ReconciliationError, reconcile

__all__ = ["BatchCounts", "ReconciliationError", "reconcile"]
