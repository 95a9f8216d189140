"""Why records belong to one customer: the links of identity/customer_links.

Every link that holds a customer together gets a row, with the evidence behind it:

- ``identifier``: records of the customer share an identifier (rule ``shared:<id_type>``,
  ``item_l`` the identifier as ``id_type:id_value``, ``records`` how many records carry it);
- ``must_link``: a reviewer's decision joined two identifiers (``item_l``, ``item_r``);
- ``probabilistic``: two records matched by the Fellegi-Sunter model (``item_l``, ``item_r``
  as ``source:record_key``) with the pair's ``match_weight``, ``match_probability`` and
  ``model_version``; only pairs whose records ended in the same customer (a link cut as a weak
  bridge or refused by a limit explains nothing and is left out).

A single record's identifiers are linked by the record itself, so a customer of one record has
no rows. The table answers "why are these two records one customer?" by following rows from
one record's identifiers to the other's.
"""

from __future__ import annotations

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdplake.identity.graph import node_key, pair_sides

IDENTIFIER = "identifier"
MUST_LINK = "must_link"
PROBABILISTIC = "probabilistic"
LINKS_COLUMNS = (
    "customer_id",
    "link_type",
    "rule",
    "item_l",
    "item_r",
    "records",
    "match_weight",
    "match_probability",
    "model_version",
)


def _optional(df: DataFrame, name: str, type_: str) -> Column:
    return F.col(name).cast(type_) if name in df.columns else F.lit(None).cast(type_)


def _shaped(df: DataFrame, **values: Column) -> DataFrame:
    defaults = {
        "item_r": F.lit(None).cast("string"),
        "records": F.lit(None).cast("bigint"),
        "match_weight": F.lit(None).cast("double"),
        "match_probability": F.lit(None).cast("double"),
        "model_version": F.lit(None).cast("string"),
    }
    defaults.update(values)
    return df.select(*(defaults[c].alias(c) if c in defaults else F.col(c) for c in LINKS_COLUMNS))


def explain_links(
    linked: DataFrame,
    customer_map: DataFrame,
    record_customer: DataFrame,
    *,
    must_link: DataFrame | None = None,
    pairs: DataFrame | None = None,
) -> DataFrame:
    """The links that hold each customer together, with their evidence (see the module doc).

    Args:
        linked: ``source, record_key, id_type, id_value`` of every identifier in the graph.
        customer_map: ``id_type, id_value, customer_id``.
        record_customer: ``source, record_key, customer_id``.
        must_link: ``src, dst`` nodes of the must-link decisions applied, or None.
        pairs: the probabilistic record pairs the run joined on (``source_l, record_key_l,
            source_r, record_key_r, match_probability`` and, when present, ``match_weight``
            and ``model_version``), or None.

    Returns:
        :data:`LINKS_COLUMNS`, one row per link.
    """
    shared = (
        linked.groupBy("id_type", "id_value")
        .agg(F.count_distinct("source", "record_key").alias("records"))
        .where(F.col("records") >= 2)
        .join(customer_map.select("id_type", "id_value", "customer_id"), ["id_type", "id_value"])
    )
    parts = [
        _shaped(
            shared,
            link_type=F.lit(IDENTIFIER),
            rule=F.concat(F.lit("shared:"), F.col("id_type")),
            item_l=node_key(F.col("id_type"), F.col("id_value")),
            records=F.col("records"),
        )
    ]
    node_customer = customer_map.select(
        node_key(F.col("id_type"), F.col("id_value")).alias("node"), "customer_id"
    )
    if must_link is not None:
        ends = (
            must_link.join(node_customer.withColumnRenamed("node", "src"), "src")
            .join(
                node_customer.select(F.col("node").alias("dst"), F.col("customer_id").alias("_customer_r")),
                "dst",
            )
            .where(F.col("customer_id") == F.col("_customer_r"))
        )
        parts.append(
            _shaped(
                ends,
                link_type=F.lit(MUST_LINK),
                rule=F.lit(MUST_LINK),
                item_l=F.col("src"),
                item_r=F.col("dst"),
            )
        )
    if pairs is not None:
        sides = pair_sides(record_customer, "customer_id", "customer")
        matched = (
            pairs.join(sides["l"], ["source_l", "record_key_l"])
            .join(sides["r"], ["source_r", "record_key_r"])
            .where(F.col("customer_l") == F.col("customer_r"))
        )
        parts.append(
            _shaped(
                matched,
                customer_id=F.col("customer_l"),
                link_type=F.lit(PROBABILISTIC),
                rule=F.lit("match_probability"),
                item_l=F.concat_ws(":", "source_l", "record_key_l"),
                item_r=F.concat_ws(":", "source_r", "record_key_r"),
                match_weight=_optional(matched, "match_weight", "double"),
                match_probability=_optional(matched, "match_probability", "double"),
                model_version=_optional(matched, "model_version", "string"),
            )
        )
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    return out
