"""Reference consumers of the gold layer: a batch segment export and a streaming outbox."""

from cdplake.consumers.export import EXPORT_COLUMNS, SegmentExport, export_segments, segment_export_rows
from cdplake.consumers.outbox import (
    EVENT_COLUMNS,
    OutboxPaths,
    membership_events,
    run_outbox,
    with_contact,
    write_outbox_batch,
)

__all__ = [
    "EVENT_COLUMNS",
    "EXPORT_COLUMNS",
    "OutboxPaths",
    "SegmentExport",
    "export_segments",
    "membership_events",
    "run_outbox",
    "segment_export_rows",
    "with_contact",
    "write_outbox_batch",
]
