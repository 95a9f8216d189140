"""Customer ids for connected components: the one seam where ids are decided.

Today an id is minted from the component's smallest identifier, so it is deterministic but
changes when two components merge (the merged one keeps only one smallest identifier). A
stable-id scheme (previous customer_map + an alias table recording merges) replaces
:func:`assign_minted_ids` with another :data:`CustomerIdAssigner`; nothing else in identity
resolution needs to change.
"""

from __future__ import annotations

from collections.abc import Callable

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

CUSTOMER_ID_PREFIX = "cus_"
HASH_CHARS = 16

# components (id_type, id_value, node, component) -> the same rows plus customer_id.
# `component` is the smallest node key (`id_type:id_value`) of the identifier's component.
# An assigner that needs history (the previous customer_map) is a closure over it.
CustomerIdAssigner = Callable[[DataFrame], DataFrame]


def mint_customer_id(smallest_identifier: Column) -> Column:
    """``cus_`` + the first 16 hex characters of SHA-256 of the component's smallest identifier.

    Args:
        smallest_identifier: the ``id_type:id_value`` string of the component's smallest node.
    """
    return F.concat(F.lit(CUSTOMER_ID_PREFIX), F.substring(F.sha2(smallest_identifier, 256), 1, HASH_CHARS))


def assign_minted_ids(components: DataFrame) -> DataFrame:
    """The default :data:`CustomerIdAssigner`: :func:`mint_customer_id` of each component."""
    return components.withColumn("customer_id", mint_customer_id(F.col("component")))
