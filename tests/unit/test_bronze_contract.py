"""Raw JSON lines held against a contract: rescued fields and type mismatches, whole frames."""

from __future__ import annotations

from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual

from cdplake.bronze.contract import with_contract_checks
from cdplake.config.contracts import ContractField, SourceContract

# One field of every contract type.
CONTRACT = SourceContract(
    "test",
    "jsonl",
    1,
    tuple(
        ContractField(name, kind)
        for name, kind in [
            ("s", "string"),
            ("i", "integer"),
            ("n", "number"),
            ("b", "boolean"),
            ("o", "object"),
            ("a", "array"),
            ("t", "timestamp"),
            ("x", "any"),
        ]
    ),
)


def test_unknown_and_type_drifted_fields_are_rescued_and_named(spark):
    rows = [
        # line, _rescued_data, _contract_errors
        (
            '{"s":"a","i":7,"n":1.5,"b":true,"o":{"k":[1]},"a":[1,{}],"t":"2026-01-02T03:04:05Z","x":[]}',
            None,
            [],
        ),
        # every type's other accepted spellings: a huge integer, an exponent, an epoch time
        ('{"i":123456789012345678901234,"n":1e300,"t":1767323045,"x":"y"}', None, []),
        ('{"n":3,"t":1767323045123.5,"x":{"deep":{"er":1}}}', None, []),
        # JSON null fits every type; an absent field is not checked
        ('{"s":null,"i":null,"n":null,"b":null,"o":null,"a":null,"t":null}', None, []),
        ("{}", None, []),
        # unknown fields only: rescued, verbatim values, no error
        ('{"s":"a","extra":{"k":1},"more":2}', '{"extra":{"k":1},"more":2}', []),
        # every type broken: rescued with their values in line order, errors sorted by name
        (
            '{"s":12,"i":1.5,"n":"3","b":"true","o":"x","a":{},"t":true}',
            '{"s":12,"i":1.5,"n":"3","b":"true","o":"x","a":{},"t":true}',
            [
                "type_mismatch:a",
                "type_mismatch:b",
                "type_mismatch:i",
                "type_mismatch:n",
                "type_mismatch:o",
                "type_mismatch:s",
                "type_mismatch:t",
            ],
        ),
        ('{"i":1e2,"extra":true}', '{"i":100.0,"extra":true}', ["type_mismatch:i"]),
        # text after the first object is ignored, as from_json does
        ('{"s":"a","extra":1} trailing', '{"extra":1}', []),
        # not a JSON object: neither (silver quarantines the line as malformed)
        ("not json", None, []),
        ("[1,2]", None, []),
        ('[{"s":1}]', None, []),
        ('"a string"', None, []),
        ("", None, []),
        (None, None, []),
    ]
    df = spark.createDataFrame(rows, "value STRING, rescued STRING, errors ARRAY<STRING>")
    checked = with_contract_checks(df.select("value"), CONTRACT).select(
        "value", F.col("_rescued_data").alias("rescued"), F.col("_contract_errors").alias("errors")
    )
    assertDataFrameEqual(checked, df)
