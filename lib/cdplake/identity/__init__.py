"""Identity resolution: silver identifiers -> identity graph -> connected components -> customer ids,
and probabilistic matching (Splink) of person records that share no identifier."""

from cdplake.identity.customer_ids import (
    CustomerIdAssigner,
    assign_minted_ids,
    assign_stable_ids,
    identity_changes,
    mint_customer_id,
)
from cdplake.identity.extract import (
    SOURCES,
    extract_identifiers,
    flag_never_link,
    never_link_reason,
    split_never_link,
)
from cdplake.identity.graph import IdentityGraphError, connected_components, node_key, record_edges
from cdplake.identity.probabilistic import (
    CandidatePairBudgetExceeded,
    LinkageModel,
    ScoreResult,
    load_model,
    person_records,
    save_model,
    score,
    score_for_pipeline,
    score_incremental,
    score_probabilistic_edges,
    train_linkage_model,
    train_model,
)
from cdplake.identity.record_linking import LinkResult, link_records
from cdplake.identity.resolve import (
    IdentityFrames,
    IdentityResult,
    ReviewDecision,
    record_review_decisions,
    resolve,
    resolve_identities,
)

__all__ = [
    "CandidatePairBudgetExceeded",
    "LinkResult",
    "LinkageModel",
    "ScoreResult",
    "link_records",
    "load_model",
    "person_records",
    "save_model",
    "score",
    "score_for_pipeline",
    "score_incremental",
    "score_probabilistic_edges",
    "train_linkage_model",
    "train_model",
    "SOURCES",
    "CustomerIdAssigner",
    "IdentityFrames",
    "IdentityGraphError",
    "IdentityResult",
    "assign_minted_ids",
    "assign_stable_ids",
    "identity_changes",
    "connected_components",
    "extract_identifiers",
    "flag_never_link",
    "mint_customer_id",
    "never_link_reason",
    "node_key",
    "record_edges",
    "resolve",
    "resolve_identities",
    "ReviewDecision",
    "record_review_decisions",
    "split_never_link",
]
