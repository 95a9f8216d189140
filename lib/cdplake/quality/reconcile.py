"""Reconciliation: every row a step reads is accounted for in what it writes.

Silver's rule per micro-batch and table: rows in = rows out (inserted or updated) + rows
quarantined + rows deduplicated (dropped as a duplicate within the batch, already stored, or
superseded by a newer version). A mismatch means rows were lost or invented on the way, and
fails the batch before its quarantine is written and its checkpoint committed.
"""

from __future__ import annotations

from dataclasses import dataclass


class ReconciliationError(RuntimeError):
    """Row counts of a batch do not add up."""


@dataclass(frozen=True)
class BatchCounts:
    """The row counts of one micro-batch written to one table."""

    table: str
    batch_id: str
    rows_in: int
    rows_out: int
    rows_quarantined: int
    rows_deduplicated: int

    @property
    def balance(self) -> int:
        """rows in minus everything accounted for; zero when the batch reconciles."""
        return self.rows_in - (self.rows_out + self.rows_quarantined + self.rows_deduplicated)


def reconcile(counts: BatchCounts) -> BatchCounts:
    """Check rows in = out + quarantined + deduplicated.

    Args:
        counts: the batch's counts.

    Returns:
        ``counts`` unchanged, for chaining.

    Raises:
        ReconciliationError: when the counts do not add up, or any count is negative.
    """
    values = (counts.rows_in, counts.rows_out, counts.rows_quarantined, counts.rows_deduplicated)
    if min(values) < 0 or counts.balance != 0:
        raise ReconciliationError(
            f"{counts.table} batch {counts.batch_id} does not reconcile: rows in {counts.rows_in} != "
            f"out {counts.rows_out} + quarantined {counts.rows_quarantined} + "
            f"deduplicated {counts.rows_deduplicated} (off by {counts.balance})"
        )
    return counts
