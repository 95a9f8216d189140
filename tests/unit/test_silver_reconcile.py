"""Reconciliation of silver batch counts: rows in = out + quarantined + deduplicated."""

from __future__ import annotations

import pytest

from cdplake.quality import BatchCounts, ReconciliationError, reconcile


def test_balanced_counts_pass_through():
    counts = BatchCounts("events", "run-1:0", rows_in=10, rows_out=6, rows_quarantined=3, rows_deduplicated=1)
    assert reconcile(counts) is counts


@pytest.mark.parametrize(
    ("rows_out", "rows_quarantined", "rows_deduplicated", "message"),
    [
        (6, 3, 0, "off by 1"),  # a row lost: 6 + 3 + 0 = 9 < 10
        (6, 3, 2, "off by -1"),  # a row invented: 6 + 3 + 2 = 11 > 10
        (12, 0, -2, "off by 0"),  # balanced only through a negative count
    ],
)
def test_unbalanced_or_negative_counts_raise(rows_out, rows_quarantined, rows_deduplicated, message):
    counts = BatchCounts("events", "run-1:0", 10, rows_out, rows_quarantined, rows_deduplicated)
    with pytest.raises(ReconciliationError, match=f"events batch run-1:0 does not reconcile.*{message}"):
        reconcile(counts)
