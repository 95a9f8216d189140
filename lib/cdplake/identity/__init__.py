"""Identity resolution: silver identifiers -> identity graph -> connected components -> customer ids."""

from cdplake.identity.customer_ids import CustomerIdAssigner, assign_minted_ids, mint_customer_id
from cdplake.identity.extract import (
    SOURCES,
    extract_identifiers,
    flag_never_link,
    never_link_reason,
    split_never_link,
)
from cdplake.identity.graph import IdentityGraphError, connected_components, node_key, record_edges
from cdplake.identity.resolve import IdentityFrames, IdentityResult, resolve, resolve_identities

__all__ = [
    "SOURCES",
    "CustomerIdAssigner",
    "IdentityFrames",
    "IdentityGraphError",
    "IdentityResult",
    "assign_minted_ids",
    "connected_components",
    "extract_identifiers",
    "flag_never_link",
    "mint_customer_id",
    "never_link_reason",
    "node_key",
    "record_edges",
    "resolve",
    "resolve_identities",
    "split_never_link",
]
