"""Raw JSON lines held against their source's schema contract (:func:`with_contract_checks`).

Bronze keeps the line untouched in ``value``; the check adds what the contract says about it:
``_rescued_data`` (a JSON object of the top-level fields the contract does not name, and of
those whose JSON type breaks it, with their values in line order; null when there are none,
as Auto Loader's rescued data column) and ``_contract_errors`` (``type_mismatch:<field>``
per broken field, sorted). A line that is not a JSON object gets neither: silver quarantines
it as malformed. Lines are read as Spark's ``from_json`` reads them: text after the first
JSON object of a line is ignored.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from pyspark.sql import Column
from pyspark.sql import functions as F

from cdplake.bronze.sources import CONTRACT_ERRORS, RESCUED_DATA
from cdplake.config.contracts import SourceContract

if TYPE_CHECKING:
    from pyspark.sql import DataFrame

TYPE_MISMATCH = "type_mismatch"


def _fits(kind: str, actual: Column) -> Column:
    """Whether a value whose variant type is ``actual`` fits the contract type ``kind``.

    Built per field from its type: a row evaluates a few string comparisons per field, not
    a check of every type (this runs on every line of every JSON source).
    """
    number = actual.isin("BIGINT", "DOUBLE", "FLOAT") | actual.startswith("DECIMAL")
    fits = {
        "any": F.lit(True),
        "string": actual == "STRING",
        "integer": (actual == "BIGINT") | (actual.startswith("DECIMAL(") & actual.endswith(",0)")),
        "number": number,
        "boolean": actual == "BOOLEAN",
        "object": actual.startswith("OBJECT"),
        "array": actual.startswith("ARRAY"),
        "timestamp": (actual == "STRING") | number,
    }[kind]
    # A JSON null fits every type (whether it may be null is silver's rule); an absent field
    # (null type) is not checked.
    return F.coalesce((actual == "VOID") | fits, F.lit(True))


def with_contract_checks(df: DataFrame, contract: SourceContract, value: str = "value") -> DataFrame:
    """Add ``_rescued_data`` and ``_contract_errors`` of the raw JSON line in column ``value``.

    ``_rescued_data``: the top-level fields the contract does not name, and those whose JSON
    type breaks it, as a JSON object with their values; null when there are none.
    ``_contract_errors``: ``type_mismatch:<field>`` per broken field, sorted; empty when none.
    A line that is not a JSON object gets neither.

    Each contract field is read as a VARIANT, which keeps its JSON type (a string "12" and
    a number 12 differ; a STRING field would hide that), in one parse; the line's keys come
    from a second, lighter one. Each step is its own projection so every field is typed once
    (this runs on every line of every JSON source): Spark does not merge projections that
    would evaluate an expensive expression twice. Only lines with something to rescue are
    parsed a third time, into a map, to copy the rescued values.
    """
    names = sorted(f.name for f in contract.fields)
    kinds = {f.name: f.type for f in contract.fields}
    fields, keys, types, broken, rescued = (
        "_cdplake_fields",
        "_cdplake_keys",
        "_cdplake_types",
        "_cdplake_broken",
        "_cdplake_rescued",
    )
    schema = ", ".join(f"`{name}` VARIANT" for name in names)
    return (
        df.withColumn(fields, F.from_json(F.col(value), schema))
        .withColumn(keys, F.json_object_keys(F.col(value)))
        .withColumn(types, F.array(*[F.schema_of_variant(F.col(fields)[name]) for name in names]))
        # The broken fields, by name: both outputs read them.
        .withColumn(
            broken,
            F.array_compact(
                F.array(*[F.when(~_fits(kinds[n], F.col(types)[i]), F.lit(n)) for i, n in enumerate(names)])
            ),
        )
        .withColumn(CONTRACT_ERRORS, F.transform(broken, lambda n: F.concat(F.lit(f"{TYPE_MISMATCH}:"), n)))
        .withColumn(
            rescued,
            F.concat(F.array_except(F.col(keys), F.array(*[F.lit(n) for n in names])), F.col(broken)),
        )
        .withColumn(
            RESCUED_DATA,
            F.when(
                F.size(rescued) > 0,
                F.to_json(
                    F.map_filter(
                        F.from_json(F.col(value), "MAP<STRING, VARIANT>"),
                        lambda k, _: F.array_contains(F.col(rescued), k),
                    )
                ),
            ),
        )
        .drop(fields, keys, types, broken, rescued)
    )
