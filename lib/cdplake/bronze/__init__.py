"""Landing → bronze: streaming file ingest with lineage columns, idempotent on replay."""

from cdplake.bronze.ingest import IngestResult, ingest_all, ingest_source, read_landing, with_lineage
from cdplake.bronze.sources import CRM_COLUMNS, LINEAGE_COLUMNS, SOURCES, SourceSpec

__all__ = [
    "CRM_COLUMNS",
    "LINEAGE_COLUMNS",
    "SOURCES",
    "IngestResult",
    "SourceSpec",
    "ingest_all",
    "ingest_source",
    "read_landing",
    "with_lineage",
]
