"""Segments: evaluate versioned definitions over the profile, keep membership and profile history,
build gold."""

from cdplake.segments.evaluate import (
    MEMBER_COLUMNS,
    SegmentDefinitionError,
    compile_condition,
    condition_columns,
    evaluate_segment,
    evaluate_segments,
)
from cdplake.segments.gold import GoldResult, build_gold, build_profile
from cdplake.segments.membership import (
    MEMBERSHIP_DDL,
    SUMMARY_DDL,
    ensure_table,
    merge_membership,
    upsert_summary,
)
from cdplake.segments.profile_history import (
    HISTORY_TABLE,
    PROFILE_HISTORY_DDL,
    history_changes,
    merge_profile_history,
)

__all__ = [
    "HISTORY_TABLE",
    "PROFILE_HISTORY_DDL",
    "MEMBERSHIP_DDL",
    "MEMBER_COLUMNS",
    "SUMMARY_DDL",
    "GoldResult",
    "SegmentDefinitionError",
    "build_gold",
    "build_profile",
    "compile_condition",
    "condition_columns",
    "ensure_table",
    "evaluate_segment",
    "evaluate_segments",
    "history_changes",
    "merge_membership",
    "merge_profile_history",
    "upsert_summary",
]
