"""CSV landing files mapped to the contract by header name, not by position.

A streaming file source needs one schema for every file, but CSV exports add, drop and
reorder columns. So the CSV is read without a header into ``WIDE`` positional STRING columns
(``_c0``...), and each micro-batch maps them per file: the file's first row is its header,
each contract column takes the value under its name, and columns the contract does not name
are kept in ``_rescued_data`` as a JSON object (as Auto Loader does). A reordered header
therefore lands in the right columns; a new column is rescued until the contract adds it,
and then evolves the bronze table (``mergeSchema``).

A row whose number of fields differs from its header (a ragged row) keeps its raw text in
``_corrupt_record`` and silver quarantines it. A file whose header names none of the
contract's columns (no header at all, or another export) is ``header_mismatch``: all its rows,
the first included, become corrupt records.
"""

from __future__ import annotations

from dataclasses import dataclass

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdplake.bronze.sources import CORRUPT_RECORD, RESCUED_DATA
from cdplake.config.contracts import SourceContract

WIDE = 64  # the most columns a CSV export may have; wider rows are kept as corrupt records
WIDE_COLUMNS = tuple(f"_c{i}" for i in range(WIDE))
_ROW = "_row"
# Fields of a raw CSV record: drop "" escapes, then quoted values, then count the commas.
# No alternation or repeated group: Java's regex engine recurses once per repetition of a
# group, and a long quoted value overflowed the stack (which kills a local-mode driver).
_ESCAPED_QUOTE = '""'
_QUOTED = '"[^"]*"'


def wide_schema_ddl() -> str:
    """The positional read schema: ``_c0`` ... ``_c63`` STRING plus ``_corrupt_record``."""
    return ", ".join(f"{c} STRING" for c in (*WIDE_COLUMNS, CORRUPT_RECORD))


@dataclass(frozen=True)
class FileHeader:
    """How one file's columns map to the contract.

    Attributes:
        path: the file (``_source_file``).
        names: the header as written.
        positions: contract column -> its index in the file (absent when the file lacks it).
        rescued: ``(key, index)`` for columns the contract does not name (keys made unique).
    """

    path: str
    names: tuple[str, ...]
    positions: dict[str, int]
    rescued: tuple[tuple[str, int], ...]

    @property
    def matches_nothing(self) -> bool:
        """True when the header names none of the contract's columns."""
        return not self.positions

    def drift(self, contract: SourceContract) -> str | None:
        """A note on columns missing or rescued, or None when the header is the contract's."""
        if self.matches_nothing:
            return f"header {list(self.names)} names none of contract v{contract.version}'s columns"
        missing = [c for c in contract.names if c not in self.positions]
        notes = []
        if missing:
            notes.append(f"missing columns {missing}")
        if self.rescued:
            notes.append(f"rescued columns {[k for k, _ in self.rescued]}")
        if not notes and list(self.names) != list(contract.names):
            notes.append("columns reordered")
        return "; ".join(notes) or None


def map_header(path: str, header: list[str | None], contract: SourceContract) -> FileHeader:
    """Map one file's header row to the contract (first occurrence of a name wins)."""
    names = [(h or "").strip() for h in header]
    while names and names[-1] == "":
        names.pop()
    if names:
        names[0] = names[0].lstrip("\ufeff")  # a byte-order mark from spreadsheet exports
    positions: dict[str, int] = {}
    rescued: list[tuple[str, int]] = []
    used: set[str] = set(contract.names)
    for i, name in enumerate(names):
        if name in contract.names and name not in positions:
            positions[name] = i
            continue
        key = name or f"_c{i}"
        if key in used:
            key = f"{key}_{i}"
        used.add(key)
        rescued.append((key, i))
    return FileHeader(path, tuple(names), positions, tuple(rescued))


def _per_file(values: dict[str, Column]) -> Column:
    expr = None
    for path, value in values.items():
        cond = F.col("_source_file") == path
        expr = F.when(cond, value) if expr is None else expr.when(cond, value)
    return expr if expr is not None else F.lit(None)


def _field_count(raw: Column) -> Column:
    unquoted = F.regexp_replace(F.regexp_replace(raw, _ESCAPED_QUOTE, ""), _QUOTED, "")
    return F.size(F.split(unquoted, ",", -1))


def by_header(batch: DataFrame, contract: SourceContract) -> tuple[DataFrame, dict[str, FileHeader]]:
    """Map a micro-batch of positional CSV rows to the contract's columns, per file.

    Args:
        batch: rows with ``_c0``... ``_corrupt_record`` and ``_source_file``, in file order.
        contract: the source's contract.

    Returns:
        ``(rows, headers)``: the data rows (header rows removed) with the contract's columns,
        ``_corrupt_record`` and ``_rescued_data`` (then ``_source_file``); and each file's
        header mapping, keyed by path.
    """
    # Each file is read whole by one task, in order (multiLine CSV is not splittable), so the
    # smallest id of a file is its first row: its header.
    # The ids are recomputed by the later read of the same files in the same partitions.
    numbered = batch.withColumn(_ROW, F.monotonically_increasing_id())
    firsts = (
        numbered.groupBy("_source_file")
        .agg(F.min(_ROW).alias("first"), F.min_by(F.array(*WIDE_COLUMNS), F.col(_ROW)).alias("header"))
        .collect()
    )
    headers = {r["_source_file"]: map_header(r["_source_file"], list(r["header"]), contract) for r in firsts}
    first_rows = [r["first"] for r in firsts if not headers[r["_source_file"]].matches_nothing]

    def column(name: str) -> Column:
        value = _per_file(
            {
                p: F.col(WIDE_COLUMNS[h.positions[name]]) if name in h.positions else F.lit(None)
                for p, h in headers.items()
            }
        ).cast("string")
        return F.when(F.regexp_replace(value, r"\s", "") != "", value)

    rescued = _per_file(
        {
            p: F.to_json(F.create_map(*[x for k, i in h.rescued for x in (F.lit(k), F.col(WIDE_COLUMNS[i]))]))
            for p, h in headers.items()
            if h.rescued
        }
    ).cast("string")
    width = _per_file({p: F.lit(len(h.names)) for p, h in headers.items()})
    unmatched = _per_file({p: F.lit(h.matches_nothing) for p, h in headers.items()})
    # The positional read marks every row narrower than WIDE corrupt, with its raw text.
    raw = F.col(CORRUPT_RECORD)
    ragged = F.coalesce(_field_count(raw) != width, F.lit(False)) | unmatched
    rows = numbered.where(~F.col(_ROW).isin(*first_rows)) if first_rows else numbered
    out = rows.select(
        *[F.when(~unmatched, column(c)).alias(c) for c in contract.names],
        F.when(ragged, raw).alias(CORRUPT_RECORD),
        F.when(~unmatched, rescued).alias(RESCUED_DATA),
        "_source_file",
    )
    return out, headers
