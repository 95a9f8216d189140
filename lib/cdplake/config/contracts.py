"""Versioned schema contracts of the landing sources, from ``conf/contracts/<source>.yaml``.

A contract names the top-level fields a source may send and the JSON type of each. Bronze
stamps the contract ``version`` on every row it writes, keeps fields the contract does not
name in ``_rescued_data`` and flags a field whose type breaks the contract. Contracts evolve
additively: a new version adds fields (``since: <version>``); changing or removing a type is
a new source, not a new version.

File shape::

    source: orders
    format: jsonl                 # jsonl (one JSON object per line) | csv (header row)
    version: 2
    fields:
      - {name: order_id, type: string}
      - {name: total, type: number}
      - {name: loyalty_card, type: string, since: 2}

Field types (JSON types; ``null`` always passes, missing values are silver's business):
``string``, ``integer``, ``number`` (integer or decimal), ``boolean``, ``object``, ``array``,
``timestamp`` (an ISO string or an epoch number) and ``any``. CSV columns are ``string``.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdplake.config.model import ConfigError, _read_yaml, default_conf_dir

CONTRACTS_DIR = "contracts"
FORMATS = ("jsonl", "csv")
FIELD_TYPES = ("string", "integer", "number", "boolean", "object", "array", "timestamp", "any")
_FIELD_KEYS = {"name", "type", "since"}
_TOP_KEYS = {"source", "format", "version", "fields", "description"}


@dataclass(frozen=True)
class ContractField:
    """One top-level field (JSON) or column (CSV) of a source.

    Attributes:
        name: the field name as the source spells it.
        type: one of :data:`FIELD_TYPES`.
        since: the contract version that added the field.
    """

    name: str
    type: str
    since: int = 1


@dataclass(frozen=True)
class SourceContract:
    """The schema contract of one landing source at its current version.

    Attributes:
        source: the landing source (``events``, ``email``, ``orders``, ``crm``).
        format: ``jsonl`` or ``csv``.
        version: the current version, stamped on bronze rows as ``_contract_version``.
        fields: the fields in contract order (for CSV, the header in column order).
    """

    source: str
    format: str
    version: int
    fields: tuple[ContractField, ...]

    @property
    def names(self) -> tuple[str, ...]:
        """The field names in contract order."""
        return tuple(f.name for f in self.fields)


def _field(raw: Any, where: str, version: int, fmt: str) -> ContractField:
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping with name and type")
    unknown = set(raw) - _FIELD_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}")
    name, kind, since = raw.get("name"), raw.get("type"), raw.get("since", 1)
    if not isinstance(name, str) or not name:
        raise ConfigError(f"{where}: name must be a non-empty string")
    if kind not in FIELD_TYPES:
        raise ConfigError(f"{where} ({name}): type must be one of {FIELD_TYPES}, got {kind!r}")
    if fmt == "csv" and kind != "string":
        raise ConfigError(f"{where} ({name}): CSV columns are read as text, type must be string")
    if not isinstance(since, int) or isinstance(since, bool) or not 1 <= since <= version:
        raise ConfigError(f"{where} ({name}): since must be an integer from 1 to version {version}")
    return ContractField(name, kind, since)


def parse_contract(raw: dict[str, Any], where: str) -> SourceContract:
    """Validate one contract mapping (the parsed YAML) into a :class:`SourceContract`.

    Raises:
        ConfigError: unknown keys, bad types, duplicate fields, ``since`` beyond ``version``.
    """
    unknown = set(raw) - _TOP_KEYS
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected some of {sorted(_TOP_KEYS)}")
    source, fmt, version, fields = raw.get("source"), raw.get("format"), raw.get("version"), raw.get("fields")
    if not isinstance(source, str) or not source:
        raise ConfigError(f"{where}: source must be a non-empty string")
    if fmt not in FORMATS:
        raise ConfigError(f"{where}: format must be one of {FORMATS}, got {fmt!r}")
    if not isinstance(version, int) or isinstance(version, bool) or version < 1:
        raise ConfigError(f"{where}: version must be a positive integer, got {version!r}")
    if not isinstance(fields, list) or not fields:
        raise ConfigError(f"{where}: fields must be a non-empty list")
    parsed = tuple(_field(f, f"{where} fields[{i}]", version, fmt) for i, f in enumerate(fields))
    names = [f.name for f in parsed]
    dupes = sorted({n for n in names if names.count(n) > 1})
    if dupes:
        raise ConfigError(f"{where}: duplicate field(s) {dupes}")
    return SourceContract(source, fmt, version, parsed)


def load_contract(source: str, conf_dir: str | Path | None = None) -> SourceContract:
    """Load ``conf/contracts/<source>.yaml``.

    Args:
        source: the landing source.
        conf_dir: the ``conf/`` folder (see :func:`cdplake.config.default_conf_dir`).

    Raises:
        ConfigError: missing file, invalid contract, or its ``source`` is not the file name.
    """
    conf = Path(conf_dir) if conf_dir is not None else default_conf_dir()
    path = conf / CONTRACTS_DIR / f"{source}.yaml"
    contract = parse_contract(_read_yaml(path), str(path))
    if contract.source != source:
        raise ConfigError(f"{path}: source is {contract.source!r}, expected {source!r} (the file name)")
    return contract
