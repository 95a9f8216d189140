"""``conf/linkage.yaml`` (as :class:`~cdplake.config.LinkageConfig`) -> Splink settings.

The only module that knows how our declarative comparison levels map onto Splink's
comparison-level library. Splink is imported lazily so the rest of the package works without it.
"""

from __future__ import annotations

from typing import Any

from cdplake.config.linkage import BlockingRule, ComparisonLevel, FieldComparison, LinkageConfig

UNIQUE_ID = "unique_id"


def splink_blocking_rule(rule: BlockingRule) -> Any:
    """A Splink blocking rule (``block_on(...)`` or the raw SQL string)."""
    from splink import block_on

    return rule.sql if rule.sql else block_on(*rule.on)


def _level(column: str, level: ComparisonLevel) -> Any:
    import splink.comparison_level_library as cll
    from splink import ColumnExpression

    col = ColumnExpression(column)
    if level.kind == "exact":
        return cll.ExactMatchLevel(column, term_frequency_adjustments=level.tf)
    if level.kind == "jaro_winkler":
        return cll.JaroWinklerLevel(column, level.threshold)
    if level.kind == "levenshtein":
        return cll.LevenshteinLevel(column, int(level.threshold or 0))
    if level.kind == "damerau_levenshtein":
        return cll.DamerauLevenshteinLevel(column, int(level.threshold or 0))
    if level.kind == "prefix":
        return cll.ExactMatchLevel(col.substr(1, int(level.length or 0))).configure(
            label_for_charts=f"first {level.length} characters equal"
        )
    if level.kind == "regex":
        return cll.ExactMatchLevel(col.regex_extract(str(level.pattern))).configure(
            label_for_charts=f"{level.pattern} part equal"
        )
    raise ValueError(f"unknown comparison level kind {level.kind!r}")  # config validation prevents this


def splink_comparison(cmp: FieldComparison) -> Any:
    """One Splink comparison: null level, the configured levels, then everything else."""
    import splink.comparison_level_library as cll
    import splink.comparison_library as cl

    null = cll.NullLevel(cmp.column, valid_string_pattern=cmp.valid_pattern)
    levels = [null, *(_level(cmp.column, lv) for lv in cmp.levels), cll.ElseLevel()]
    return cl.CustomComparison(
        comparison_levels=levels,
        output_column_name=cmp.column,
        comparison_description=f"{cmp.column}: " + ", ".join(lv.kind for lv in cmp.levels),
    )


def splink_settings(cfg: LinkageConfig, *, link_type: str = "dedupe_only") -> Any:
    """The Splink ``SettingsCreator`` for a linkage configuration.

    Args:
        cfg: the parsed ``linkage.yaml``.
        link_type: Splink link type; ``dedupe_only`` treats every input record as one pool
            (sources are columns, not separate datasets, so CRM vs CRM pairs count too).

    Returns:
        A ``splink.SettingsCreator`` over records keyed by ``unique_id``.
    """
    from splink import SettingsCreator

    return SettingsCreator(
        link_type=link_type,
        unique_id_column_name=UNIQUE_ID,
        comparisons=[splink_comparison(c) for c in cfg.comparisons],
        blocking_rules_to_generate_predictions=[splink_blocking_rule(r) for r in cfg.blocking_rules],
        em_convergence=cfg.training.em_convergence,
        max_iterations=cfg.training.em_max_iterations,
        retain_matching_columns=True,
        retain_intermediate_calculation_columns=False,
        # source/record_key ride along so edges name the silver records they join.
        additional_columns_to_retain=["source", "record_key"],
    )


def settings_dict(cfg: LinkageConfig) -> dict[str, Any]:
    """The compiled settings as Splink's JSON-ready dict (Spark SQL dialect)."""
    return splink_settings(cfg).get_settings("spark").as_dict()
