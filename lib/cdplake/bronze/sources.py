"""The landing contract as bronze reads it: which sources exist and how each is parsed.

See ARCHITECTURE.md, "Landing formats". JSON-lines sources are read as plain text so bronze
keeps every line untouched (a malformed line is never lost); the CRM export is read as CSV,
its columns mapped to the contract by header name (:mod:`cdplake.bronze.csv_header`), with
unparseable rows kept in ``_corrupt_record``. The fields themselves are in the versioned
contracts, ``conf/contracts/<source>.yaml``.
"""

from __future__ import annotations

from dataclasses import dataclass

CRM_COLUMNS = (
    "contact_id",
    "first_name",
    "last_name",
    "email",
    "phone",
    "address_line1",
    "city",
    "postcode",
    "country",
    "date_of_birth",
    "loyalty_tier",
    "email_opt_in",
    "email_opt_in_at",
    "updated_at",
)
CORRUPT_RECORD = "_corrupt_record"
RESCUED_DATA = "_rescued_data"
CONTRACT_ERRORS = "_contract_errors"
CONTRACT_VERSION = "_contract_version"
LINEAGE_COLUMNS = ("_source_file", "_ingested_at", "_batch_id")


@dataclass(frozen=True)
class SourceSpec:
    """How one landing source is read.

    Attributes:
        name: the source (``landing/<name>/``, ``bronze/<name>``).
        format: ``text`` (JSON lines, one raw line per row) or ``csv``.
        glob: file-name filter; skips temp and marker files, admits gzip'ed files.
    """

    name: str
    format: str
    glob: str

    @property
    def data_columns(self) -> tuple[str, ...]:
        """The bronze columns before lineage."""
        return ("value",) if self.format == "text" else (*CRM_COLUMNS, CORRUPT_RECORD)


SOURCES: dict[str, SourceSpec] = {
    "events": SourceSpec("events", "text", "*.{jsonl,jsonl.gz,json,json.gz}"),
    "email": SourceSpec("email", "text", "*.{jsonl,jsonl.gz,json,json.gz}"),
    "orders": SourceSpec("orders", "text", "*.{jsonl,jsonl.gz,json,json.gz}"),
    "crm": SourceSpec("crm", "csv", "*.{csv,csv.gz}"),
}


def crm_schema_ddl(columns: tuple[str, ...] = CRM_COLUMNS) -> str:
    """The CRM CSV read schema: every contract column a STRING, plus ``_corrupt_record``."""
    return ", ".join(f"`{c}` STRING" for c in (*columns, CORRUPT_RECORD))
