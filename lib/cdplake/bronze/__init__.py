"""Landing → bronze: streaming file ingest with lineage columns, idempotent on replay."""

from cdplake.bronze.files import FILES_SCHEMA, LandedFile, batch_files
from cdplake.bronze.ingest import (
    IngestResult,
    ingest_all,
    ingest_source,
    read_landing,
    start_all,
    start_ingest,
    with_contract,
    with_lineage,
)
from cdplake.bronze.sources import CRM_COLUMNS, LINEAGE_COLUMNS, SOURCES, SourceSpec

__all__ = [
    "FILES_SCHEMA",
    "LandedFile",
    "batch_files",
    "start_all",
    "start_ingest",
    "with_contract",
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
