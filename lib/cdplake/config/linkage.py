"""Probabilistic matching settings from ``conf/linkage.yaml``: blocking, comparisons, training.

Parsed once into frozen dataclasses; :mod:`cdplake.identity.linkage_settings` turns them into
Splink settings. Nothing here imports Splink or Spark.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cdplake.config.model import ConfigError, _read_yaml

LINKAGE_FILE = "linkage.yaml"

LEVEL_KINDS = ("exact", "jaro_winkler", "levenshtein", "damerau_levenshtein", "prefix", "regex")

_SQL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


@dataclass(frozen=True)
class BlockingRule:
    """Which pairs are candidates: equal ``on`` expressions, or a raw Splink ``sql`` rule.

    Attributes:
        on: (``equal:`` in YAML) column names or SQL expressions (``substr(first_name, 1, 1)``) equal on both sides.
        sql: a Splink rule over ``l.`` and ``r.`` (``l.email = r.email and ...``).
    """

    on: tuple[str, ...] = ()
    sql: str | None = None

    def describe(self) -> str:
        """The rule as people read it in the cost-guard message."""
        if self.sql:
            return self.sql
        return " and ".join(f"l.{e} = r.{e}" if _SQL_NAME.match(e) else f"{e} equal" for e in self.on)


@dataclass(frozen=True)
class ComparisonLevel:
    """One level of a field comparison, tried after the levels above it.

    Attributes:
        kind: one of :data:`LEVEL_KINDS`.
        threshold: similarity (jaro_winkler, 0-1) or edit distance (levenshtein kinds).
        length: characters compared by ``prefix``.
        pattern: regular expression whose match is compared by ``regex``.
        tf: term-frequency adjustment (``exact`` only).
    """

    kind: str
    threshold: float | None = None
    length: int | None = None
    pattern: str | None = None
    tf: bool = False


@dataclass(frozen=True)
class FieldComparison:
    """How one field of two records is compared.

    Attributes:
        column: the field.
        levels: from most to least similar; the null level and the else level are implicit.
        valid_pattern: values not matching this regex are treated like nulls.
    """

    column: str
    levels: tuple[ComparisonLevel, ...]
    valid_pattern: str | None = None


@dataclass(frozen=True)
class TrainingSettings:
    """How the model's parameters are estimated without labels.

    Attributes:
        deterministic_rules: near-certain match rules used to estimate the prior.
        deterministic_recall: share of true matches those rules are believed to find.
        u_max_pairs: random pairs sampled to estimate u probabilities.
        u_seed: seed of that sample (fixed so retraining on the same data is repeatable).
        u_num_chunks: Splink scores the sample in this many chunks per comparison and stops
            early once every level was seen often enough; each chunk is a Spark job, so on
            a small cluster one chunk (no early stop) is the fastest.
        em_rules: one EM session per rule estimates m probabilities.
        em_convergence: stop EM when no parameter moves more than this.
        em_max_iterations: EM iterations per session at most.
        engine: where the estimation runs. ``duckdb`` copies the records (at most
            ``driver_max_records``, a seeded random sample above that) to the driver and trains
            there with Splink's DuckDB backend; ``spark`` trains with Splink's Spark backend on
            the cluster. Either way scoring runs on Spark with the same comparisons.
        driver_max_records: the most records the ``duckdb`` engine copies to the driver.
    """

    deterministic_rules: tuple[str, ...]
    deterministic_recall: float
    u_max_pairs: int
    u_seed: int
    em_rules: tuple[BlockingRule, ...]
    em_convergence: float = 0.001
    em_max_iterations: int = 25
    u_num_chunks: int = 1
    engine: str = "duckdb"
    driver_max_records: int = 1_000_000


TRAINING_ENGINES = ("duckdb", "spark")


@dataclass(frozen=True)
class IncrementalScoring:
    """How an incremental scoring run scores a batch of new or changed records.

    Attributes:
        engine: ``duckdb`` selects on Spark the existing records that share a blocking key
            with a new record, copies those and the new records to the driver and scores
            new vs existing and new vs new there with Splink's DuckDB backend (term
            frequencies still come from every record, counted on Spark); ``spark`` scores with
            Splink's Spark backend. The ``duckdb`` engine hands over to ``spark`` when the copy
            would exceed ``driver_max_records``, a blocking rule is raw SQL (its candidates
            cannot be selected by key), or the model's comparisons differ from the config's.
        driver_max_records: the most records (new plus candidates) copied to the driver.
        cluster_driver_max: the clusters a batch changes are recomputed on the driver when
            the records they hold and the links between them each number at most this many,
            else on Spark (0: always on Spark). Either way the result is the same.
    """

    engine: str = "duckdb"
    driver_max_records: int = 200_000
    cluster_driver_max: int = 100_000


@dataclass(frozen=True)
class LinkageConfig:
    """Everything probabilistic matching reads from configuration.

    Attributes:
        blocking_rules: candidate pairs are the union of these rules' pairs.
        comparisons: one per field.
        training: parameter estimation.
        incremental: how incremental scoring runs score a batch.
        threshold_match_probability: a pair at or above this is a link.
        min_match_probability_written: pairs below this are not written.
        max_candidate_pairs: the cost guard's budget.
        max_cluster_size: over-merge guard: a cluster with more records is split by clustering
            it again at the stricter thresholds of ``split_thresholds`` (0 = no guard).
        split_thresholds: the stricter match probabilities tried, in increasing order.
        count_sample_proportion: share of records per side used to count candidate pairs.
        repartition_after_blocking: Splink Spark backend setting.
        num_partitions_on_repartition: Splink Spark backend setting.
    """

    blocking_rules: tuple[BlockingRule, ...]
    comparisons: tuple[FieldComparison, ...]
    training: TrainingSettings
    incremental: IncrementalScoring = IncrementalScoring()
    threshold_match_probability: float = 0.9
    min_match_probability_written: float = 0.01
    max_candidate_pairs: int = 20_000_000
    max_cluster_size: int = 0
    split_thresholds: tuple[float, ...] = (0.99, 0.999, 0.9999)
    count_sample_proportion: float = 1.0
    repartition_after_blocking: bool = False
    num_partitions_on_repartition: int = 4

    @property
    def columns(self) -> tuple[str, ...]:
        """The fields the comparisons read, in configuration order."""
        return tuple(c.column for c in self.comparisons)


def _check_keys(raw: dict[str, Any], known: set[str], where: str) -> None:
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected some of {sorted(known)}")


def _mapping(raw: Any, where: str) -> dict[str, Any]:
    if raw is None:
        return {}
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping")
    return raw


def _number(raw: Any, where: str, low: float, high: float) -> float:
    if isinstance(raw, bool) or not isinstance(raw, (int, float)) or not low <= raw <= high:
        raise ConfigError(f"{where} must be a number in [{low}, {high}], got {raw!r}")
    return float(raw)


def _positive_int(raw: Any, where: str) -> int:
    if isinstance(raw, float) and raw.is_integer():
        raw = int(raw)
    if isinstance(raw, bool) or not isinstance(raw, int) or raw < 1:
        raise ConfigError(f"{where} must be a positive integer, got {raw!r}")
    return raw


def _non_negative_int(raw: Any, where: str) -> int:
    return 0 if raw == 0 and not isinstance(raw, bool) else _positive_int(raw, where)


def _thresholds(raw: Any, where: str) -> tuple[float, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where} must be a non-empty list of probabilities")
    values = tuple(_number(v, f"{where}[{i}]", 0.0, 1.0) for i, v in enumerate(raw))
    if list(values) != sorted(set(values)):
        raise ConfigError(f"{where} must be strictly increasing, got {list(values)}")
    return values


def _regex(raw: Any, where: str) -> str:
    if not isinstance(raw, str):
        raise ConfigError(f"{where} must be a regular expression string")
    try:
        re.compile(raw)
    except re.error as exc:
        raise ConfigError(f"{where}: {raw!r} is not a valid regex: {exc}") from None
    return raw


def _rule(raw: Any, where: str) -> BlockingRule:
    rule = _mapping(raw, where)
    # `equal`, not `on`: YAML 1.1 reads a bare `on` key as the boolean true.
    _check_keys(rule, {"equal", "sql"}, where)
    if ("equal" in rule) == ("sql" in rule):
        raise ConfigError(f"{where}: give exactly one of `equal` (a list) or `sql` (a string)")
    if "sql" in rule:
        if not isinstance(rule["sql"], str) or "l." not in rule["sql"] or "r." not in rule["sql"]:
            raise ConfigError(f"{where}: sql must be a rule over l. and r. columns, got {rule['sql']!r}")
        return BlockingRule(sql=rule["sql"])
    on = rule["equal"]
    if not isinstance(on, list) or not on or not all(isinstance(e, str) and e.strip() for e in on):
        raise ConfigError(f"{where}: equal must be a non-empty list of columns or expressions")
    return BlockingRule(on=tuple(e.strip() for e in on))


def _rules(raw: Any, where: str) -> tuple[BlockingRule, ...]:
    if not isinstance(raw, list) or not raw:
        raise ConfigError(f"{where} must be a non-empty list of rules")
    return tuple(_rule(r, f"{where}[{i}]") for i, r in enumerate(raw))


def _level(raw: Any, where: str) -> ComparisonLevel:
    lv = _mapping(raw, where)
    _check_keys(lv, {"kind", "threshold", "length", "pattern", "tf"}, where)
    kind = lv.get("kind")
    if kind not in LEVEL_KINDS:
        raise ConfigError(f"{where}: kind must be one of {LEVEL_KINDS}, got {kind!r}")
    needs = {
        "jaro_winkler": "threshold",
        "levenshtein": "threshold",
        "damerau_levenshtein": "threshold",
        "prefix": "length",
        "regex": "pattern",
    }.get(kind)
    if needs and needs not in lv:
        raise ConfigError(f"{where}: a {kind} level needs `{needs}`")
    threshold = None
    if kind == "jaro_winkler":
        threshold = _number(lv["threshold"], f"{where}.threshold", 0.0, 1.0)
    elif kind in ("levenshtein", "damerau_levenshtein"):
        threshold = float(_positive_int(lv["threshold"], f"{where}.threshold"))
    tf = lv.get("tf", False)
    if not isinstance(tf, bool):
        raise ConfigError(f"{where}.tf must be true or false")
    if tf and kind != "exact":
        # Splink adjusts by the frequency of the exact value; on a fuzzy level that value
        # differs between the two records, so the adjustment would be meaningless.
        raise ConfigError(f"{where}: tf adjustment applies to exact levels only")
    return ComparisonLevel(
        kind=kind,
        threshold=threshold,
        length=_positive_int(lv["length"], f"{where}.length") if kind == "prefix" else None,
        pattern=_regex(lv["pattern"], f"{where}.pattern") if kind == "regex" else None,
        tf=tf,
    )


def _comparison(raw: Any, where: str) -> FieldComparison:
    cmp = _mapping(raw, where)
    _check_keys(cmp, {"column", "levels", "valid_pattern"}, where)
    column = cmp.get("column")
    if not isinstance(column, str) or not _SQL_NAME.match(column):
        raise ConfigError(f"{where}: column must be a plain column name, got {column!r}")
    levels = cmp.get("levels")
    if not isinstance(levels, list) or not levels:
        raise ConfigError(f"{where}: levels must be a non-empty list")
    pattern = cmp.get("valid_pattern")
    return FieldComparison(
        column=column,
        levels=tuple(_level(lv, f"{where}.levels[{i}]") for i, lv in enumerate(levels)),
        valid_pattern=_regex(pattern, f"{where}.valid_pattern") if pattern is not None else None,
    )


def _training(raw: Any, where: str) -> TrainingSettings:
    tr = _mapping(raw, where)
    _check_keys(
        tr,
        {
            "deterministic_rules",
            "deterministic_recall",
            "u_max_pairs",
            "u_seed",
            "u_num_chunks",
            "em_rules",
            "em_convergence",
            "em_max_iterations",
            "engine",
            "driver_max_records",
        },
        where,
    )
    engine = tr.get("engine", "duckdb")
    if engine not in TRAINING_ENGINES:
        raise ConfigError(f"{where}.engine must be one of {', '.join(TRAINING_ENGINES)}, got {engine!r}")
    det = tr.get("deterministic_rules")
    if not isinstance(det, list) or not det or not all(isinstance(r, str) for r in det):
        raise ConfigError(f"{where}.deterministic_rules must be a non-empty list of SQL rules")
    return TrainingSettings(
        deterministic_rules=tuple(det),
        deterministic_recall=_number(
            tr.get("deterministic_recall", 0.7), f"{where}.deterministic_recall", 0.01, 1.0
        ),
        u_max_pairs=_positive_int(tr.get("u_max_pairs", 1_000_000), f"{where}.u_max_pairs"),
        u_seed=int(tr.get("u_seed", 42)),
        u_num_chunks=_positive_int(tr.get("u_num_chunks", 1), f"{where}.u_num_chunks"),
        em_rules=_rules(tr.get("em_rules"), f"{where}.em_rules"),
        em_convergence=_number(tr.get("em_convergence", 0.001), f"{where}.em_convergence", 1e-9, 1.0),
        em_max_iterations=_positive_int(tr.get("em_max_iterations", 25), f"{where}.em_max_iterations"),
        engine=engine,
        driver_max_records=_positive_int(
            tr.get("driver_max_records", 1_000_000), f"{where}.driver_max_records"
        ),
    )


def _incremental(raw: Any, where: str) -> IncrementalScoring:
    inc = _mapping(raw, where)
    _check_keys(inc, {"engine", "driver_max_records", "cluster_driver_max"}, where)
    engine = inc.get("engine", "duckdb")
    if engine not in TRAINING_ENGINES:
        raise ConfigError(f"{where}.engine must be one of {', '.join(TRAINING_ENGINES)}, got {engine!r}")
    return IncrementalScoring(
        engine=engine,
        driver_max_records=_positive_int(
            inc.get("driver_max_records", 200_000), f"{where}.driver_max_records"
        ),
        cluster_driver_max=_non_negative_int(
            inc.get("cluster_driver_max", 100_000), f"{where}.cluster_driver_max"
        ),
    )


def parse_linkage_config(raw: dict[str, Any], where: str = LINKAGE_FILE) -> LinkageConfig:
    """Validate a parsed ``linkage.yaml`` mapping into a :class:`LinkageConfig`.

    Raises:
        ConfigError: unknown keys, wrong types, a level missing its threshold, a bad regex, or
            a blocking / EM rule on a column no comparison reads.
    """
    _check_keys(
        raw,
        {
            "blocking_rules",
            "comparisons",
            "training",
            "incremental",
            "threshold_match_probability",
            "min_match_probability_written",
            "max_candidate_pairs",
            "max_cluster_size",
            "split_thresholds",
            "count_sample_proportion",
            "spark",
        },
        where,
    )
    comparisons = raw.get("comparisons")
    if not isinstance(comparisons, list) or not comparisons:
        raise ConfigError(f"{where}: comparisons must be a non-empty list")
    spark = _mapping(raw.get("spark"), f"{where}: spark")
    _check_keys(spark, {"repartition_after_blocking", "num_partitions_on_repartition"}, f"{where}: spark")
    cfg = LinkageConfig(
        blocking_rules=_rules(raw.get("blocking_rules"), f"{where}: blocking_rules"),
        comparisons=tuple(_comparison(c, f"{where}: comparisons[{i}]") for i, c in enumerate(comparisons)),
        training=_training(raw.get("training"), f"{where}: training"),
        incremental=_incremental(raw.get("incremental"), f"{where}: incremental"),
        threshold_match_probability=_number(
            raw.get("threshold_match_probability", 0.9), f"{where}: threshold_match_probability", 0.0, 1.0
        ),
        min_match_probability_written=_number(
            raw.get("min_match_probability_written", 0.01),
            f"{where}: min_match_probability_written",
            0.0,
            1.0,
        ),
        max_candidate_pairs=_positive_int(
            raw.get("max_candidate_pairs", 20_000_000), f"{where}: max_candidate_pairs"
        ),
        max_cluster_size=_non_negative_int(raw.get("max_cluster_size", 0), f"{where}: max_cluster_size"),
        split_thresholds=_thresholds(
            raw.get("split_thresholds", [0.99, 0.999, 0.9999]), f"{where}: split_thresholds"
        ),
        count_sample_proportion=_number(
            raw.get("count_sample_proportion", 1.0), f"{where}: count_sample_proportion", 1e-6, 1.0
        ),
        repartition_after_blocking=bool(spark.get("repartition_after_blocking", False)),
        num_partitions_on_repartition=_positive_int(
            spark.get("num_partitions_on_repartition", 4), f"{where}: spark.num_partitions_on_repartition"
        ),
    )
    if any(t <= cfg.threshold_match_probability for t in cfg.split_thresholds):
        raise ConfigError(
            f"{where}: split_thresholds {list(cfg.split_thresholds)} must all be above "
            f"threshold_match_probability {cfg.threshold_match_probability}"
        )
    names = [c.column for c in cfg.comparisons]
    if len(set(names)) != len(names):
        raise ConfigError(f"{where}: a column is compared twice in {names}")
    for rule in cfg.blocking_rules + cfg.training.em_rules:
        for expr in rule.on:
            if _SQL_NAME.match(expr) and expr not in names:
                raise ConfigError(f"{where}: rule on {expr!r}, which no comparison reads; columns: {names}")
    return cfg


def load_linkage_config(path_or_conf_dir: str | Path) -> LinkageConfig:
    """Load and validate a linkage settings file.

    Args:
        path_or_conf_dir: a YAML file, or a ``conf/`` folder holding ``linkage.yaml``.

    Raises:
        ConfigError: the file is missing or invalid.
    """
    path = Path(path_or_conf_dir)
    if path.is_dir():
        path = path / LINKAGE_FILE
    return parse_linkage_config(_read_yaml(path), where=str(path))
