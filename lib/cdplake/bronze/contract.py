"""Column functions that hold a raw JSON line against its source's schema contract.

Bronze keeps the line untouched in ``value``; these add what the contract says about it:
``_rescued_data`` (a JSON object of the top-level fields the contract does not name, and of
those whose JSON type breaks it, verbatim; null when there are none, as Auto Loader's rescued
data column) and ``_contract_errors`` (``type_mismatch:<field>`` per broken field, sorted).
A line that is not a JSON object gets neither: silver quarantines it as malformed.
"""

from __future__ import annotations

from pyspark.sql import Column
from pyspark.sql import functions as F

from cdplake.config.contracts import SourceContract

TYPE_MISMATCH = "type_mismatch"


def _type_ok(expected: Column, actual: Column) -> Column:
    """Whether a value whose variant type is ``actual`` fits the contract type ``expected``."""
    integer = (actual == "BIGINT") | actual.rlike(r"^DECIMAL\([0-9]+,0\)$")
    number = actual.isin("BIGINT", "DOUBLE", "FLOAT") | actual.startswith("DECIMAL")
    return (
        (actual == "VOID")  # a JSON null fits every type; whether it may be null is silver's rule
        | (expected == "any")
        | ((expected == "string") & (actual == "STRING"))
        | ((expected == "integer") & integer)
        | ((expected == "number") & number)
        | ((expected == "boolean") & (actual == "BOOLEAN"))
        | ((expected == "object") & actual.startswith("OBJECT"))
        | ((expected == "array") & actual.startswith("ARRAY"))
        | ((expected == "timestamp") & ((actual == "STRING") | number))
    )


def _fields(value: Column) -> Column:
    # A variant keeps each value's JSON type (a string "12" and a number 12 differ), which a
    # from_json with STRING fields would hide. Not an object (malformed, an array) -> null.
    return F.try_parse_json(value).try_cast("map<string, variant>")


def _expected(contract: SourceContract) -> Column:
    return F.create_map(*[F.lit(x) for f in contract.fields for x in (f.name, f.type)])


def _broken(contract: SourceContract, value: Column) -> Column:
    """The map of the contract's fields whose JSON type breaks the contract."""
    expected = _expected(contract)
    return F.map_filter(
        _fields(value),
        lambda k, v: expected[k].isNotNull() & ~_type_ok(expected[k], F.schema_of_variant(v)),
    )


def rescued_data(contract: SourceContract, value: Column) -> Column:
    """Unknown and type-drifted top-level fields of a raw JSON line, as a JSON object; null if none.

    Args:
        contract: the source's contract.
        value: the raw line.
    """
    expected = _expected(contract)
    rescued = F.map_filter(
        _fields(value),
        lambda k, v: expected[k].isNull() | ~_type_ok(expected[k], F.schema_of_variant(v)),
    )
    return F.when(F.cardinality(rescued) > 0, F.to_json(rescued))


def contract_errors(contract: SourceContract, value: Column) -> Column:
    """``ARRAY<STRING>`` of ``type_mismatch:<field>`` for a raw JSON line; empty when none.

    Args:
        contract: the source's contract.
        value: the raw line.
    """
    broken = F.sort_array(F.map_keys(_broken(contract, value)))
    return F.coalesce(
        F.transform(broken, lambda k: F.concat(F.lit(f"{TYPE_MISMATCH}:"), k)),
        F.array().cast("array<string>"),
    )
