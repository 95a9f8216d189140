"""The identity layer's table reads and whole-table overwrites.

Appends with transaction ids and MERGEs go through :mod:`cdplake.io.delta`.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from pyspark.sql import DataFrame, SparkSession

    from cdplake.config import EnvConfig


def exists(spark: SparkSession, path: str) -> bool:
    from delta.tables import DeltaTable

    return DeltaTable.isDeltaTable(spark, path)


def read(spark: SparkSession, path: str) -> DataFrame:
    return spark.read.format("delta").load(path)


def read_tables(
    spark: SparkSession, env: EnvConfig, layer: str, names: Iterable[str]
) -> dict[str, DataFrame]:
    """Read ``<layer>/<name>`` for each name; a missing table is an error that names it."""
    out: dict[str, DataFrame] = {}
    for name in names:
        path = env.paths.table(layer, name)
        if not exists(spark, path):
            raise FileNotFoundError(f"{layer}/{name} does not exist at {path}; run the {layer} step first")
        out[name] = read(spark, path)
    return out


def overwrite(df: DataFrame, path: str) -> None:
    # overwriteSchema: these tables are rebuilt whole each run, so a column added by a newer
    # version of the code must not fail against the old schema.
    df.write.format("delta").mode("overwrite").option("overwriteSchema", "true").save(path)
