"""Probabilistic (Fellegi-Sunter) matching of person records that share no identifier.

Splink is the scoring engine. This module gives it one view of person records built from
silver (CRM contacts, orders, identify traits), trains a model without labels (prior from
deterministic rules, u from random pairs, m by EM), saves it with a version under the lake,
refuses to score when the blocking rules would produce more candidate pairs than the budget,
and writes every scored pair as ``identity/probabilistic_edges``:

    source_l, record_key_l, source_r, record_key_r, match_weight, match_probability,
    model_version, run_id

Training and scoring are separate entry points: scheduled jobs only score with a saved model.
"""

from __future__ import annotations

import datetime as dt
import json
import logging
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F

from cdplake.config.linkage import BlockingRule, LinkageConfig
from cdplake.identity import driver_sql
from cdplake.identity.linkage_settings import UNIQUE_ID, splink_blocking_rule, splink_settings
from cdplake.io.delta import hadoop_fs

if TYPE_CHECKING:
    import pandas as pd
    from pyspark.sql import SparkSession

    from cdplake.config import EnvConfig, LakePaths

PERSON_COLUMNS = ("first_name", "last_name", "email", "phone", "postcode", "city", "date_of_birth")
RECORD_COLUMNS = (UNIQUE_ID, "source", "record_key", *PERSON_COLUMNS)
EDGE_COLUMNS = (
    "source_l",
    "record_key_l",
    "source_r",
    "record_key_r",
    "match_weight",
    "match_probability",
    "model_version",
    "run_id",
)
EDGES_TABLE = "probabilistic_edges"
MODEL_KIND = "linkage"
LATEST = "LATEST"

log = logging.getLogger(__name__)


class CandidatePairBudgetExceeded(RuntimeError):
    """The blocking rules would produce more candidate pairs than ``max_candidate_pairs``."""


@dataclass(frozen=True)
class LinkageModel:
    """A trained Splink model and the version it is saved under.

    Attributes:
        version: e.g. ``linkage_20261124T140000Z``; stamped on every edge scored with it.
        settings: Splink's model JSON (settings plus trained m/u and prior).
    """

    version: str
    settings: Mapping[str, Any]


@dataclass(frozen=True)
class PairCount:
    """Candidate pairs one blocking rule adds (``marginal``) and the running total."""

    rule: str
    marginal: int
    cumulative: int


# --- the person-record view -------------------------------------------------------------


def _blank_null(col: Column) -> Column:
    trimmed = F.trim(col.cast("string"))
    return F.when(trimmed != "", trimmed)


def split_full_name(name: Column) -> tuple[Column, Column]:
    """``(first, last)`` from a full name as staff type it: ``First Last`` or ``Last, First``.

    Everything after the first word is the last name (``Anne Marie Smith`` -> ``Anne``,
    ``Marie Smith``); a single word is taken as the last name, since tills record surnames.
    """
    clean = _blank_null(name)
    has_comma = clean.contains(",")
    before = F.trim(F.substring_index(clean, ",", 1))
    after = F.trim(F.regexp_extract(clean, r",\s*(.*)$", 1))
    words = F.split(clean, r"\s+", 2)
    first = F.when(has_comma, _blank_null(after)).when(F.size(words) > 1, words[0])
    last = F.when(has_comma, _blank_null(before)).when(F.size(words) > 1, words[1]).otherwise(clean)
    return first, last


def _record(source: str, key: str, **cols: Column) -> list[Column]:
    out = [
        F.concat_ws(":", F.lit(source), F.col(key).cast("string")).alias(UNIQUE_ID),
        F.lit(source).alias("source"),
        F.col(key).cast("string").alias("record_key"),
    ]
    for name in PERSON_COLUMNS:
        value = cols.get(name)
        out.append((_blank_null(value) if value is not None else F.lit(None).cast("string")).alias(name))
    return out


def person_records(silver: Mapping[str, DataFrame]) -> DataFrame:
    """One row per silver record that describes a person, in the columns linkage compares.

    Args:
        silver: any of ``crm_contacts``, ``orders``, ``events`` (only ``identify`` calls,
            whose traits describe the person; other events carry no personal fields).

    Returns:
        ``unique_id`` (``<source>:<record_key>``), ``source``, ``record_key`` and
        :data:`PERSON_COLUMNS` as strings (``date_of_birth`` as ``yyyy-MM-dd``). Blank
        values are null, so they fall into each comparison's null level.

    Raises:
        ValueError: none of the three tables is given.
    """
    parts: list[DataFrame] = []
    if "crm_contacts" in silver:
        c = F.col
        parts.append(
            silver["crm_contacts"].select(
                *_record(
                    "crm_contacts",
                    "contact_id",
                    first_name=c("first_name"),
                    last_name=c("last_name"),
                    email=c("email"),
                    phone=c("phone"),
                    postcode=c("postcode"),
                    city=F.initcap(c("city")),
                    date_of_birth=F.date_format(c("date_of_birth"), "yyyy-MM-dd"),
                )
            )
        )
    if "orders" in silver:
        first, last = split_full_name(F.col("customer_name"))
        parts.append(
            silver["orders"].select(
                *_record(
                    "orders",
                    "order_id",
                    first_name=first,
                    last_name=last,
                    email=F.col("customer_email"),
                    phone=F.col("customer_phone"),
                )
            )
        )
    if "events" in silver:
        identify = silver["events"].where(F.col("type") == "identify")
        parts.append(
            identify.select(
                *_record(
                    "events",
                    "message_id",
                    first_name=F.col("first_name"),
                    last_name=F.col("last_name"),
                    email=F.col("email"),
                    phone=F.col("phone"),
                )
            )
        )
    if not parts:
        raise ValueError("no person tables given; expected some of crm_contacts, orders, events")
    out = parts[0]
    for part in parts[1:]:
        out = out.unionByName(part)
    # A record with no personal field at all cannot be compared; it stays out of the view
    # (it is still in silver and in the deterministic graph).
    return out.where(F.coalesce(*[F.col(c) for c in PERSON_COLUMNS]).isNotNull())


# --- Splink plumbing --------------------------------------------------------------------


def splink_api(spark: SparkSession, cfg: LinkageConfig, checkpoint_dir: str | None = None) -> Any:
    """Splink's Spark backend on the injected session, with the UDFs from its jar registered.

    Args:
        spark: the session (its ``spark.jars`` must hold Splink's similarity jar; the
            session builder adds it).
        cfg: supplies the repartition settings.
        checkpoint_dir: where Splink writes intermediate tables as parquet (large runs);
            ``None`` keeps them in memory (``persist``), right for small inputs.
    """
    from splink import SparkAPI

    if checkpoint_dir is not None and spark.sparkContext.getCheckpointDir() is None:
        spark.sparkContext.setCheckpointDir(checkpoint_dir)
    return SparkAPI(
        spark_session=spark,
        break_lineage_method="parquet" if checkpoint_dir else "persist",
        repartition_after_blocking=cfg.repartition_after_blocking,
        num_partitions_on_repartition=cfg.num_partitions_on_repartition,
        register_udfs_automatically=True,
    )


def _linker(db_api: Any, records: DataFrame, settings: Any, columns: tuple[str, ...]) -> Any:
    from splink import Linker

    wanted = (UNIQUE_ID, "source", "record_key", *columns)
    missing = [c for c in wanted if c not in records.columns]
    if missing:
        raise ValueError(
            f"records lack column(s) {missing} that the linkage settings compare; have {records.columns}"
        )
    sdf = db_api.register(records.select(*wanted))
    return Linker(sdf, settings, log_level=logging.WARNING)


def count_candidate_pairs(linker: Any, cfg: LinkageConfig) -> list[PairCount]:
    """Candidate pairs each blocking rule adds, counted by Splink before any pair is built."""
    rows = linker.blocking_analysis.count_comparisons_from_blocking_rules(
        [splink_blocking_rule(r) for r in cfg.blocking_rules],
        record_sample_proportion=cfg.count_sample_proportion,
    )
    return [
        PairCount(
            rule.describe(), int(row["marginal_comparison_count"]), int(row["cumulative_comparison_count"])
        )
        for rule, row in zip(cfg.blocking_rules, rows, strict=True)
    ]


def _rule_keys(rule: BlockingRule) -> tuple[list[Column], list[str], Column]:
    """An ``equal`` rule's key columns (named ``_k0``, ``_k1``, ...), their names, and the
    condition that every key is non-null (a null key pairs with nothing)."""
    names = [f"_k{i}" for i in range(len(rule.on))]
    present = F.lit(True)
    for name in names:
        present = present & F.col(name).isNotNull()
    return [F.expr(e).alias(n) for e, n in zip(rule.on, names, strict=True)], names, present


def candidate_pair_bound(records: DataFrame, rules: tuple[BlockingRule, ...]) -> int | None:
    """An upper bound of the candidate pairs, from key counts alone (no pair is built).

    A rule of ``equal`` expressions pairs the records of each group of equal, non-null keys:
    n(n-1)/2 for a group of n. The union of the rules has at most the sum of that over every
    group of every rule (pairs two rules share count twice). One Spark job.

    Returns:
        The bound, or ``None`` when a rule is raw SQL (no bound without building its pairs).
    """
    if any(rule.sql for rule in rules):
        return None
    total: DataFrame | None = None
    for rule in rules:
        keys, names, all_present = _rule_keys(rule)
        groups = (
            records.select(*keys)
            .where(all_present)
            .groupBy(*names)
            .count()
            .select((F.col("count") * (F.col("count") - 1) / 2).cast("long").alias("pairs"))
        )
        total = groups if total is None else total.unionByName(groups)
    if total is None:
        return 0
    return int(total.agg(F.coalesce(F.sum("pairs"), F.lit(0))).first()[0])


def guarded_candidate_pairs(linker: Any, records: DataFrame, cfg: LinkageConfig) -> int:
    """The cost guard: the exact number of candidate pairs, or an error above the budget.

    When the cheap bound of :func:`candidate_pair_bound` is within ``max_candidate_pairs``,
    the candidate pairs are built once, as Splink's prediction will use them (it reuses the
    table), and counted. Otherwise Splink counts each rule's marginal pairs (on a sample when
    ``count_sample_proportion`` < 1) and :func:`check_budget` decides, naming each rule.

    Raises:
        CandidatePairBudgetExceeded: the blocking rules give more pairs than the budget.
    """
    bound = candidate_pair_bound(records, cfg.blocking_rules)
    if bound is None or bound > cfg.max_candidate_pairs:
        return check_budget(count_candidate_pairs(linker, cfg), cfg.max_candidate_pairs)
    return int(linker.inference.compute_blocked_pairs_for_predict().as_spark_dataframe().count())


def check_budget(counts: list[PairCount], budget: int) -> int:
    """The total candidate pairs, or an error naming each rule's share when over ``budget``.

    Raises:
        CandidatePairBudgetExceeded: the total is above ``budget``.
    """
    total = counts[-1].cumulative if counts else 0
    if total > budget:
        lines = "\n".join(f"  {c.marginal:>14,}  {c.rule}" for c in counts)
        raise CandidatePairBudgetExceeded(
            f"refusing to score: the blocking rules give {total:,} candidate pairs, above the "
            f"budget max_candidate_pairs={budget:,}. Pairs added by each rule:\n{lines}\n"
            "Tighten the rule with the most pairs (add a column to it) or raise the budget."
        )
    return total


# --- train, save, load ------------------------------------------------------------------


def new_model_version(now: dt.datetime | None = None) -> str:
    """A sortable model version such as ``linkage_20261124T140000Z``."""
    return "linkage_" + (now or dt.datetime.now(dt.timezone.utc)).strftime("%Y%m%dT%H%M%SZ")


def train_model(
    spark: SparkSession,
    records: DataFrame,
    cfg: LinkageConfig,
    version: str,
    *,
    checkpoint_dir: str | None = None,
) -> LinkageModel:
    """Estimate the model's parameters from unlabelled person records.

    The prior comes from the deterministic rules and their assumed recall, u probabilities
    from random pairs, m probabilities from one EM session per ``training.em_rules`` entry.
    With ``training.engine: duckdb`` (the default) the estimation runs on the driver
    (:func:`_train_on_driver`); with ``spark`` on Splink's Spark backend. The saved model is
    Spark SQL either way: scoring always runs on Spark.

    Args:
        spark: the session.
        records: :func:`person_records`, or any frame with ``unique_id``, ``source``,
            ``record_key`` and the configured columns.
        cfg: the linkage configuration.
        version: the version to save the model under.
        checkpoint_dir: see :func:`splink_api` (``spark`` engine only).
    """
    if cfg.training.engine == "duckdb":
        settings = _train_on_driver(records, cfg)
    else:
        db_api = splink_api(spark, cfg, checkpoint_dir)
        linker = _linker(db_api, records, splink_settings(cfg), cfg.columns)
        _estimate_parameters(linker, cfg)
        settings = linker.misc.save_model_to_json()
    # Splink names its cached tables after linker_uid; a saved uid would make two linkers in
    # one session (say a full and an incremental scoring) share table names. The version
    # lives in the file name instead, and every linker gets a fresh uid.
    settings["linker_uid"] = None
    return LinkageModel(version=version, settings=settings)


def _estimate_parameters(linker: Any, cfg: LinkageConfig) -> None:
    """The training steps, the same on either engine."""
    from splink import block_on

    tr = cfg.training
    linker.training.estimate_probability_two_random_records_match(
        list(tr.deterministic_rules), recall=tr.deterministic_recall
    )
    linker.training.estimate_u_using_random_sampling(
        max_pairs=tr.u_max_pairs, seed=tr.u_seed, num_chunks=tr.u_num_chunks
    )
    for rule in tr.em_rules:
        linker.training.estimate_parameters_using_expectation_maximisation(
            rule.sql if rule.sql else block_on(*rule.on)
        )


def _train_on_driver(records: DataFrame, cfg: LinkageConfig) -> dict[str, Any]:
    """Train with Splink's DuckDB backend on a copy of the records on the driver.

    Training reads the records many times (the prior's rules, the random pairs for u, the
    blocked pairs of every EM session, each EM iteration), and on Spark each read is a job
    with its fixed cost; in-process DuckDB does the same work on a bounded copy in a few
    seconds. Above ``training.driver_max_records`` a seeded random sample of that size is
    copied (a sample estimates u as well; EM keeps the matches within the sample, plenty at
    that size). The trained m and u probabilities and the prior are then put into the Spark
    SQL settings of the same comparisons, so the saved model scores on Spark.
    """
    import duckdb
    from splink import DuckDBAPI, Linker

    tr = cfg.training
    wanted = (UNIQUE_ID, "source", "record_key", *cfg.columns)
    missing = [c for c in wanted if c not in records.columns]
    if missing:
        raise ValueError(
            f"records lack column(s) {missing} that the linkage settings compare; have {records.columns}"
        )
    frame = records.select(*wanted)
    total = frame.count()
    if total > tr.driver_max_records:
        log.info("training on a random %d of %d person records", tr.driver_max_records, total)
        frame = frame.sample(fraction=tr.driver_max_records / total, seed=tr.u_seed)
    table = frame.toArrow()
    con = duckdb.connect()
    try:
        db_api = DuckDBAPI(connection=con)
        # DuckDB's own Jaro-Winkler here (driver_sql: the Spark UDF's arithmetic in Python
        # made training on 10k records 4 s -> 8 s); it puts a few pairs near a threshold in
        # another level than Spark would, which moves the estimates little (BENCHMARKS.md).
        linker = Linker(db_api.register(table), splink_settings(cfg), log_level=logging.WARNING)
        _estimate_parameters(linker, cfg)
        trained = linker.misc.save_model_to_json()
    finally:
        con.close()
    return with_trained_parameters(splink_settings(cfg).get_settings("spark").as_dict(), trained)


def with_trained_parameters(settings: Mapping[str, Any], trained: Mapping[str, Any]) -> dict[str, Any]:
    """``settings`` with the prior and every level's m and u probabilities of ``trained``.

    Both must describe the same comparisons (same output columns, levels in the same order
    with the same labels), as two dialects of one configuration do.

    Raises:
        ValueError: the comparisons differ.
    """
    out = json.loads(json.dumps(dict(settings)))
    out["probability_two_random_records_match"] = trained["probability_two_random_records_match"]

    def shape(s: Mapping[str, Any]) -> list[tuple[str, list[str]]]:
        return [
            (c["output_column_name"], [lv.get("label_for_charts", "") for lv in c["comparison_levels"]])
            for c in s["comparisons"]
        ]

    if shape(out) != shape(trained):
        raise ValueError(
            f"trained model compares {shape(trained)}, the settings {shape(out)}; cannot combine them"
        )
    for cmp_out, cmp_trained in zip(out["comparisons"], trained["comparisons"], strict=True):
        for level, fitted in zip(cmp_out["comparison_levels"], cmp_trained["comparison_levels"], strict=True):
            for key in ("m_probability", "u_probability"):
                if key in fitted:
                    level[key] = fitted[key]
    return out


def _write_text(spark: SparkSession, path: str, text: str) -> None:
    fs, hpath = hadoop_fs(spark, path)
    out = fs.create(hpath, True)
    try:
        out.write(bytearray(text.encode("utf-8")))
    finally:
        out.close()


def _read_text(spark: SparkSession, path: str) -> str:
    fs, hpath = hadoop_fs(spark, path)
    if not fs.exists(hpath):
        raise FileNotFoundError(path)
    stream = fs.open(hpath)
    try:
        jvm = spark.sparkContext._jvm
        return str(jvm.org.apache.commons.io.IOUtils.toString(stream, "UTF-8"))
    finally:
        stream.close()


def save_model(spark: SparkSession, paths: LakePaths, model: LinkageModel) -> str:
    """Write ``models/linkage/<version>.json`` and point ``LATEST`` at it; returns the path."""
    folder = paths.models(MODEL_KIND)
    path = f"{folder}/{model.version}.json"
    _write_text(spark, path, json.dumps(dict(model.settings), indent=2, sort_keys=True))
    _write_text(spark, f"{folder}/{LATEST}", model.version + "\n")
    return path


def load_model(spark: SparkSession, paths: LakePaths, version: str | None = None) -> LinkageModel:
    """Read a saved model; the one ``LATEST`` names when ``version`` is ``None``.

    Raises:
        FileNotFoundError: no model was trained yet, or no such version (the message says
            which command trains one).
    """
    folder = paths.models(MODEL_KIND)
    try:
        version = version or _read_text(spark, f"{folder}/{LATEST}").strip()
        text = _read_text(spark, f"{folder}/{version}.json")
    except FileNotFoundError as exc:
        raise FileNotFoundError(
            f"no linkage model at {exc}: train one with `cdplake-train-linkage-model`"
        ) from None
    return LinkageModel(version=version, settings=json.loads(text))


# --- score ------------------------------------------------------------------------------


@dataclass(frozen=True)
class ScoredPairs:
    """What :func:`score` returns.

    Attributes:
        edges: one row per scored pair in :data:`EDGE_COLUMNS`.
        candidate_pairs: the cost guard's count.
        predictions: Splink's prediction table (for clustering), as a SplinkDataFrame.
        linker: the Splink linker that scored them.
        db_api: the Splink Spark backend the linker runs on.
    """

    edges: DataFrame
    candidate_pairs: int
    predictions: Any
    linker: Any
    db_api: Any


def score(
    spark: SparkSession,
    records: DataFrame,
    model: LinkageModel,
    cfg: LinkageConfig,
    run_id: str,
    *,
    checkpoint_dir: str | None = None,
) -> ScoredPairs:
    """Score every candidate pair of ``records`` with a saved model, after the cost guard.

    Blocking and thresholds come from ``cfg`` (so the budget and rules can be tightened
    without retraining); comparisons and parameters come from the model.

    Raises:
        CandidatePairBudgetExceeded: before any pair is built, when the rules give too many.
    """
    db_api = splink_api(spark, cfg, checkpoint_dir)
    settings = dict(model.settings)
    settings["linker_uid"] = None
    settings["blocking_rules_to_generate_predictions"] = [splink_blocking_rule(r) for r in cfg.blocking_rules]
    # The model's comparisons decide which columns are read, whatever the config says now.
    columns = tuple(c["output_column_name"] for c in settings["comparisons"])
    linker = _linker(db_api, records, settings, columns)
    total = guarded_candidate_pairs(linker, records, cfg)
    predictions = linker.inference.predict(
        threshold_match_probability=cfg.min_match_probability_written or None, warning_mode="never"
    )
    edges = predictions.as_spark_dataframe().select(
        "source_l",
        "record_key_l",
        "source_r",
        "record_key_r",
        F.col("match_weight").cast("double"),
        F.col("match_probability").cast("double"),
        F.lit(model.version).alias("model_version"),
        F.lit(run_id).alias("run_id"),
    )
    return ScoredPairs(
        edges=edges, candidate_pairs=total, predictions=predictions, linker=linker, db_api=db_api
    )


def score_incremental(
    spark: SparkSession,
    existing: DataFrame,
    new: DataFrame,
    model: LinkageModel,
    cfg: LinkageConfig,
    run_id: str,
    *,
    checkpoint_dir: str | None = None,
) -> DataFrame:
    """Score only the pairs a batch of new records adds: new vs existing, and within new.

    Term frequencies come from existing and new together, as in a full run, so a pair gets
    the weight a full re-run would give it. With ``incremental.engine: duckdb`` the batch is
    scored on the driver (:func:`_score_batch_on_driver`) unless that engine hands over;
    otherwise, or then, with Splink's Spark backend.

    Returns:
        Edges in :data:`EDGE_COLUMNS`; pairs below ``min_match_probability_written`` left out.
    """
    if cfg.incremental.engine == "duckdb":
        scored = _score_batch_on_driver(spark, existing, new, model, cfg)
        if scored is not None:
            return _oriented_edges(scored, model.version, run_id)
    db_api = splink_api(spark, cfg, checkpoint_dir)
    settings = dict(model.settings)
    settings["linker_uid"] = None
    settings["blocking_rules_to_generate_predictions"] = [splink_blocking_rule(r) for r in cfg.blocking_rules]
    columns = tuple(c["output_column_name"] for c in settings["comparisons"])
    wanted = (UNIQUE_ID, "source", "record_key", *columns)
    linker = _linker(db_api, existing.unionByName(new), settings, columns)
    # predict_between/within read term frequencies from the linker's cache; computing them
    # over the linker's input (existing + new) puts them there.
    for column in _tf_columns(settings):
        linker.table_management.compute_tf_table(column)
    old_sdf = db_api.register(existing.select(*wanted))
    new_sdf = db_api.register(new.select(*wanted))
    threshold = cfg.min_match_probability_written or None
    between = linker.inference.predict_between(
        new_sdf, old_sdf, threshold_match_probability=threshold, warning_mode="never"
    )
    within = linker.inference.predict_within(
        new_sdf, threshold_match_probability=threshold, warning_mode="never"
    )
    scored = between.as_spark_dataframe().unionByName(within.as_spark_dataframe(), allowMissingColumns=True)
    return _oriented_edges(scored, model.version, run_id)


def _tf_columns(settings: Mapping[str, Any]) -> list[str]:
    """The columns with term-frequency adjustments in Splink ``settings``, each once."""
    out: list[str] = []
    for comparison in settings["comparisons"]:
        for level in comparison["comparison_levels"]:
            column = level.get("tf_adjustment_column")
            if column and column not in out:
                out.append(column)
    return out


def _oriented_edges(scored: DataFrame, model_version: str, run_id: str) -> DataFrame:
    """Scored pairs as :data:`EDGE_COLUMNS`, keyed as a full run keys them.

    A full run puts the smaller ``source:record_key`` on the left; between new and existing
    records the new one is always left, so pairs are swapped where needed.
    """
    swap = F.concat_ws(":", "source_l", "record_key_l") > F.concat_ws(":", "source_r", "record_key_r")

    def side(name: str, own: str, other: str) -> Column:
        return F.when(swap, F.col(f"{name}_{other}")).otherwise(F.col(f"{name}_{own}")).alias(f"{name}_{own}")

    return scored.select(
        side("source", "l", "r"),
        side("record_key", "l", "r"),
        side("source", "r", "l"),
        side("record_key", "r", "l"),
        F.col("match_weight").cast("double"),
        F.col("match_probability").cast("double"),
        F.lit(model_version).alias("model_version"),
        F.lit(run_id).alias("run_id"),
    )


def blocking_candidates(
    existing: DataFrame, new: DataFrame, rules: tuple[BlockingRule, ...]
) -> DataFrame | None:
    """The existing records that share some blocking rule's key with a new record.

    Every pair a rule makes between a new and an existing record has equal, non-null keys,
    so these are all the existing records a batch can be paired with. The new records' keys
    are broadcast (a batch is small next to the records it is scored against).

    Returns:
        Rows of ``existing`` (each once), or ``None`` when a rule is raw SQL.
    """
    if any(rule.sql for rule in rules):
        return None
    if not rules:
        return existing.limit(0)
    # Every rule's key of a record as one 64-bit hash of the rule number and the key values,
    # so one scan of ``existing`` and one broadcast semi-join serve every rule. Two keys that
    # collide only add an existing record that no rule pairs: scoring applies the rules.
    keyed: list[Column] = []
    for number, rule in enumerate(rules):
        keys = [F.expr(e) for e in rule.on]
        present = F.lit(True)
        for key in keys:
            present = present & key.isNotNull()
        keyed.append(F.when(present, F.xxhash64(F.lit(number), *keys)))
    block = F.explode(F.array(*keyed)).alias("_block")
    new_keys = new.select(block).where(F.col("_block").isNotNull()).distinct()
    return (
        existing.select("*", block)
        .join(F.broadcast(new_keys), "_block", "left_semi")
        .drop("_block")
        .dropDuplicates([UNIQUE_ID])
    )


def _term_frequencies(records: DataFrame, values_of: Any, columns: list[str]) -> dict[str, Any]:
    """Splink's term-frequency tables over ``records``, only for values found in ``values_of``.

    Splink's own definition: a value's count over the count of non-null values of the column.
    One scan and one aggregation for every column together: values not wanted are counted
    in one group per column, for its total (values compared as strings, cast back after).

    Args:
        records: every record.
        values_of: a pyarrow table with ``columns``: the values whose frequencies are wanted.
        columns: the term-frequency columns.

    Returns:
        column -> a pyarrow table ``<column>, tf_<column>``.
    """
    import pyarrow as pa

    spark = records.sparkSession
    wanted = sorted({(c, str(v)) for c in columns for v in values_of.column(c).to_pylist() if v is not None})
    marks = spark.createDataFrame(
        [(c, v, True) for c, v in wanted] or [("", "", True)], "column string, value string, _wanted boolean"
    )
    cells = F.array(
        *[F.struct(F.lit(c).alias("column"), F.col(c).cast("string").alias("value")) for c in columns]
    )
    all_cells = (
        records.select(F.explode(cells).alias("cell")).select("cell.*").where(F.col("value").isNotNull())
    )
    rows = (
        all_cells.join(F.broadcast(marks), ["column", "value"], "left")
        .groupBy("column", F.when(F.col("_wanted"), F.col("value")).alias("value"))
        .count()
        .collect()
    )
    total: dict[str, int] = {}
    for r in rows:
        total[r["column"]] = total.get(r["column"], 0) + r["count"]
    out: dict[str, Any] = {}
    for column in columns:
        mine = [r for r in rows if r["column"] == column and r["value"] is not None]
        out[column] = pa.table(
            {
                column: pa.array([r["value"] for r in mine], pa.string()),
                f"tf_{column}": pa.array([r["count"] / total[column] for r in mine], pa.float64()),
            }
        )
    return out


def _score_batch_on_driver(
    spark: SparkSession, existing: DataFrame, new: DataFrame, model: LinkageModel, cfg: LinkageConfig
) -> DataFrame | None:
    """Score a batch on the driver with Splink's DuckDB backend (``incremental.engine: duckdb``).

    On Spark: the existing records sharing a blocking key with a new one
    (:func:`blocking_candidates`) and the term frequencies of the values they and the batch
    hold, over every record (:func:`_term_frequencies`). On the driver: the model's trained
    parameters in the DuckDB dialect of the same comparisons, its Jaro-Winkler swapped for the
    Spark UDF's arithmetic (:mod:`cdplake.identity.driver_sql`) so every pair lands in the
    level a full Spark run gives it, then ``predict_between`` (new vs candidates) and
    ``predict_within`` (new vs new), as the Spark path does.

    Returns:
        The scored pairs as a Spark DataFrame (Splink's prediction columns), or ``None`` when
        the Spark path must score instead: a raw-SQL blocking rule, the model's comparisons
        differ from the config's, or more than ``incremental.driver_max_records`` records.
    """
    import duckdb
    import pyarrow as pa
    from splink import DuckDBAPI, Linker

    try:
        settings = with_trained_parameters(
            driver_sql.spark_identical(splink_settings(cfg).get_settings("duckdb").as_dict()), model.settings
        )
    except ValueError as exc:
        log.info("scoring the batch on Spark: %s", exc)
        return None
    candidates = blocking_candidates(existing, new, cfg.blocking_rules)
    if candidates is None:
        log.info("scoring the batch on Spark: a blocking rule is raw SQL")
        return None
    wanted = (UNIQUE_ID, "source", "record_key", *cfg.columns)
    cap = cfg.incremental.driver_max_records
    batch = new.select(*wanted).limit(cap + 1).toArrow()
    others = (
        candidates.select(*wanted).limit(cap + 1 - batch.num_rows).toArrow()
        if batch.num_rows <= cap
        else None
    )
    if others is None or batch.num_rows + others.num_rows > cap:
        log.info("scoring the batch on Spark: more than %d records (batch and candidates)", cap)
        return None
    settings["linker_uid"] = None
    local = pa.concat_tables([batch, others])
    tf_columns = _tf_columns(settings)
    frequencies = {}
    if tf_columns:
        frequencies = _term_frequencies(existing.unionByName(new), local.select(tf_columns), tf_columns)
    con = duckdb.connect()
    try:
        driver_sql.register(con)
        db_api = DuckDBAPI(connection=con)
        linker = Linker(db_api.register(local), settings, log_level=logging.WARNING)
        for column, table in frequencies.items():
            typed = table.cast(
                pa.schema(
                    [batch.schema.field(column).with_name(column), pa.field(f"tf_{column}", pa.float64())]
                )
            )
            linker.table_management.register_term_frequency_lookup(db_api.register(typed), column)
        threshold = cfg.min_match_probability_written or None
        new_sdf = db_api.register(batch)
        parts = [
            linker.inference.predict_within(
                new_sdf, threshold_match_probability=threshold, warning_mode="never"
            )
        ]
        if others.num_rows:
            parts.append(
                linker.inference.predict_between(
                    new_sdf,
                    db_api.register(others),
                    threshold_match_probability=threshold,
                    warning_mode="never",
                )
            )
        keep = ["source_l", "record_key_l", "source_r", "record_key_r", "match_weight", "match_probability"]
        scored = pa.concat_tables([p.as_pyarrow_table().select(keep) for p in parts])
    finally:
        con.close()
    return spark.createDataFrame(scored)


def clusters(
    scored: ScoredPairs,
    threshold: float,
    max_cluster_size: int = 0,
    split_thresholds: tuple[float, ...] = (),
    *,
    with_component: bool = False,
) -> DataFrame:
    """Connected components of the pairs at or above ``threshold``: every record, one cluster.

    With ``max_cluster_size`` (the over-merge guard), a cluster with more records is split
    by clustering it again at each stricter threshold of ``split_thresholds`` in turn: each
    record takes the loosest of those clusterings where its cluster fits, or the strictest
    (the rule of :func:`guard_cluster_size`). Only too-large clusters are clustered again, one
    pandas function per cluster on the executors (:func:`split_too_large`): a stricter
    cluster lies inside a looser one, so that equals clustering every record at every
    threshold, without a Spark connected-components run per threshold.

    Returns:
        ``source, record_key, cluster_id`` (a singleton record is its own cluster); with
        ``with_component``, also ``component_id``: the connected component at ``threshold``
        the cluster lies in (the cluster itself unless the guard split it), which lets
        :func:`cdplake.identity.cluster_update.update_clusters` find its scope in one pass.
    """
    first = scored.linker.clustering.cluster_pairwise_predictions_at_threshold(
        scored.predictions, threshold_match_probability=threshold
    )
    cut = first.as_spark_dataframe().select(
        UNIQUE_ID, "source", "record_key", F.col("cluster_id").cast("string")
    )
    if not max_cluster_size or not split_thresholds:
        out = cut.drop(UNIQUE_ID).withColumn("component_id", F.col("cluster_id"))
    else:
        pairs = scored.predictions.as_spark_dataframe().select(
            f"{UNIQUE_ID}_l", f"{UNIQUE_ID}_r", F.col("match_probability").cast("double")
        )
        out = split_too_large(cut, pairs, max_cluster_size, split_thresholds)
    return out if with_component else out.drop("component_id")


def split_too_large(
    cut: DataFrame, pairs: DataFrame, max_cluster_size: int, split_thresholds: tuple[float, ...]
) -> DataFrame:
    """The over-merge guard on a clustering ``cut`` (``unique_id, source, record_key, cluster_id``).

    Args:
        cut: every record's cluster at the loosest threshold.
        pairs: ``unique_id_l, unique_id_r, match_probability``, the scored pairs.
        max_cluster_size: clusters with more records are split.
        split_thresholds: stricter thresholds, loosest first.

    Returns:
        ``source, record_key, cluster_id, component_id``: a record of a cluster that fits
        keeps it; the others get ``<i>:<smallest unique_id of their cluster>`` at the first
        stricter threshold ``i`` (1-based) where it has at most ``max_cluster_size``
        records, or at the strictest. ``component_id`` is the cluster of ``cut``.
    """
    from pyspark.sql import Window
    from pyspark.sql.types import StringType, StructField, StructType

    sized = cut.withColumn("_size", F.count("*").over(Window.partitionBy("cluster_id")))
    big = sized.where(F.col("_size") > max_cluster_size)
    nodes = big.select(F.col("cluster_id").alias("_group"), F.col(UNIQUE_ID).alias("_l"))
    # Every pair at a stricter threshold lies inside one cluster of the cut: its left end
    # names the group. Nodes ride along as rows without a right end (they may have no pair).
    inside = pairs.where(F.col("match_probability") >= min(split_thresholds)).join(
        nodes.withColumnRenamed("_l", f"{UNIQUE_ID}_l"), f"{UNIQUE_ID}_l"
    )
    rows = nodes.select(
        "_group", "_l", F.lit(None).cast("string").alias("_r"), F.lit(None).cast("double").alias("_p")
    ).unionByName(
        inside.select(
            "_group",
            F.col(f"{UNIQUE_ID}_l").alias("_l"),
            F.col(f"{UNIQUE_ID}_r").alias("_r"),
            F.col("match_probability").alias("_p"),
        )
    )
    schema = StructType([StructField(UNIQUE_ID, StringType()), StructField("cluster_id", StringType())])
    thresholds = tuple(split_thresholds)

    def split(group: pd.DataFrame) -> pd.DataFrame:
        return split_one_cluster(group, max_cluster_size, thresholds)

    resplit = rows.groupBy("_group").applyInPandas(split, schema=schema)
    kept = sized.where(F.col("_size") <= max_cluster_size).select(
        "source", "record_key", "cluster_id", F.col("cluster_id").alias("component_id")
    )
    return kept.unionByName(
        resplit.join(
            big.select(UNIQUE_ID, "source", "record_key", F.col("cluster_id").alias("component_id")),
            UNIQUE_ID,
        ).select("source", "record_key", "cluster_id", "component_id")
    )


def split_one_cluster(group: pd.DataFrame, max_size: int, thresholds: tuple[float, ...]) -> pd.DataFrame:
    """One too-large cluster (rows ``_l, _r, _p``; a node alone has no ``_r``): :func:`split_nodes`."""
    import pandas as pd

    pairs = group[group["_r"].notna()]
    chosen = split_nodes(
        set(group["_l"]), list(zip(pairs["_l"], pairs["_r"], pairs["_p"], strict=True)), max_size, thresholds
    )
    return pd.DataFrame({UNIQUE_ID: list(chosen), "cluster_id": list(chosen.values())})


def split_nodes(
    nodes: Iterable[str],
    pairs: Sequence[tuple[str, str, float]],
    max_size: int,
    thresholds: tuple[float, ...],
) -> dict[str, str]:
    """Each node of one too-large cluster: its cluster at the first threshold where it fits.

    Args:
        nodes: the cluster's unique ids.
        pairs: ``(unique_id_l, unique_id_r, match_probability)`` links inside it.
        max_size: the most records a cluster may hold.
        thresholds: stricter match probabilities, loosest first.

    Returns:
        node -> ``<level>:<smallest node of its part>`` (``level`` 1-based; the strictest
        level's parts are kept whatever their size).
    """
    ordered = sorted(set(nodes))
    chosen: dict[str, str] = {}
    for level, t in enumerate(thresholds, start=1):
        parent = {n: n for n in ordered}

        def root(n: str, parent: dict[str, str] = parent) -> str:
            while parent[n] != n:
                parent[n] = parent[parent[n]]
                n = parent[n]
            return n

        for a, b, p in pairs:
            if p >= t:
                ra, rb = root(a), root(b)
                if ra != rb:
                    parent[max(ra, rb)] = min(ra, rb)  # the root is the smallest id: Splink's cluster id
        members: dict[str, list[str]] = {}
        for n in ordered:
            if n not in chosen:
                members.setdefault(root(n), []).append(n)
        last = level == len(thresholds)
        for head, part in members.items():
            if len(part) <= max_size or last:
                for n in part:
                    chosen[n] = f"{level}:{head}"
    return chosen


def guard_cluster_size(cuts: list[DataFrame], max_cluster_size: int) -> DataFrame:
    """Pick, per record, the loosest clustering whose cluster has at most ``max_cluster_size`` records.

    ``cuts`` are clusterings of the same records (``source, record_key, cluster_id``) at
    increasing thresholds, so each one refines the one before. Two records in one cluster of
    cut *i* are together in every looser cut too, so they pick the same cut and the result
    is a partition. A cluster still too big at the strictest cut is kept as it is there.
    Cluster ids are ``<cut>:<cluster_id>`` from the second cut on.
    """
    from pyspark.sql import Window

    last = len(cuts) - 1
    levels = None
    for i, cut in enumerate(cuts):
        sized = cut.select(
            "source",
            "record_key",
            F.lit(i).alias("_level"),
            (F.col("cluster_id") if i == 0 else F.concat(F.lit(f"{i}:"), F.col("cluster_id"))).alias(
                "cluster_id"
            ),
            F.count("*").over(Window.partitionBy("cluster_id")).alias("_size"),
        )
        levels = sized if levels is None else levels.unionByName(sized)
    assert levels is not None
    fits = (F.col("_size") <= max_cluster_size) | (F.col("_level") == last)
    first_fit = Window.partitionBy("source", "record_key").orderBy("_level")
    return (
        levels.where(fits)
        .withColumn("_r", F.row_number().over(first_fit))
        .where("_r = 1")
        .select("source", "record_key", "cluster_id")
    )


# --- the lake jobs ----------------------------------------------------------------------

PERSON_TABLES = ("crm_contacts", "orders", "events")


def silver_person_records(spark: SparkSession, env: EnvConfig) -> DataFrame:
    """:func:`person_records` over the lake's silver tables (those that exist)."""
    from cdplake.identity import _store

    silver = {
        t: _store.read(spark, env.paths.table("silver", t))
        for t in PERSON_TABLES
        if _store.exists(spark, env.paths.table("silver", t))
    }
    if not silver:
        raise FileNotFoundError(
            f"no silver person tables ({', '.join(PERSON_TABLES)}); run the silver step first"
        )
    return person_records(silver)


def train_linkage_model(
    spark: SparkSession, env: EnvConfig, cfg: LinkageConfig, version: str | None = None
) -> tuple[LinkageModel, str]:
    """Train on the lake's silver person records and save; returns the model and its path."""
    records = silver_person_records(spark, env).cache()
    model = train_model(
        spark, records, cfg, version or new_model_version(), checkpoint_dir=env.paths.checkpoint("splink")
    )
    records.unpersist()
    return model, save_model(spark, env.paths, model)


@dataclass(frozen=True)
class ScoreResult:
    """Counts of one scoring run.

    Attributes:
        model_version: the model scored with.
        records: person records scored (in an incremental run: the new or changed ones).
        candidate_pairs: pairs the blocking rules produced (full runs; 0 when incremental).
        edges_written: rows of identity/probabilistic_edges after the run.
        links: of those, at or above the threshold.
        mode: ``full`` or ``incremental``.
    """

    model_version: str
    records: int
    candidate_pairs: int
    edges_written: int
    links: int
    mode: str = "full"


# One row per person record as last scored: what an incremental run compares with.
SCORED_TABLE = "scored_records"


def fingerprint(columns: Sequence[str]) -> Column:
    """SHA-256 of the record's ``columns`` as JSON: it changes when any compared value does."""
    return F.sha2(F.to_json(F.struct(*[F.col(c) for c in columns])), 256)


def _fingerprint(records: DataFrame) -> DataFrame:
    """``source, record_key, fingerprint`` (of the compared columns) per person record."""
    return records.select("source", "record_key", fingerprint(PERSON_COLUMNS).alias("fingerprint"))


def score_for_pipeline(
    spark: SparkSession, env: EnvConfig, run_id: str, *, train_if_missing: bool = False
) -> tuple[ScoreResult | None, str]:
    """The pipeline's scoring step: the latest saved model applied incrementally to silver.

    Scheduled runs only score: without a saved model the step is skipped and says how to
    train one, unless ``train_if_missing`` (the demo run) trains and saves one first. When
    Splink cannot train on the data (a tiny demo: a training rule pairs no records), the step
    is skipped with Splink's reason and the run goes on with deterministic links only.

    Returns:
        ``(result, note)``: the scoring result, or None when skipped; ``note`` says why it was
        skipped or that a model was trained.
    """
    from cdplake.config import load_identity_config, load_linkage_config

    if not load_identity_config(env.conf_dir).use_probabilistic_edges:
        return None, "off (identity.yaml: use_probabilistic_edges: false)"
    cfg = load_linkage_config(env.conf_dir)
    note = ""
    try:
        load_model(spark, env.paths)
    except FileNotFoundError:
        if not train_if_missing:
            return None, "skipped: no saved model (train one with `cdplake-train-linkage-model`)"
        from splink.internals.exceptions import SplinkException

        try:
            model, _ = train_linkage_model(spark, env, cfg)
        except SplinkException as exc:  # e.g. a training rule that pairs no records in a tiny lake
            first_line = str(exc).strip().splitlines()[0]
            return None, f"skipped: could not train a model on this data ({first_line})"
        note = f"trained {model.version}; "
    return score_probabilistic_edges(spark, env, cfg, run_id, incremental=True), note


def score_probabilistic_edges(
    spark: SparkSession,
    env: EnvConfig,
    cfg: LinkageConfig,
    run_id: str,
    model_version: str | None = None,
    *,
    incremental: bool = False,
) -> ScoreResult:
    """Score the lake's silver person records into ``identity/probabilistic_edges``.

    A full run scores every record (after the cost guard) and overwrites the table. An
    incremental run scores only the person records that are new or whose compared columns
    changed since the last run (``identity/scored_records`` holds a fingerprint of each),
    against the others and among themselves (:func:`score_incremental`), and MERGEs: the
    pairs of changed or vanished records are replaced, every other pair is left as it was.
    It runs in full when nothing was scored before or the model version differs.

    Args:
        model_version: a saved version; the latest trained model by default.
        incremental: try an incremental run.
    """
    from cdplake.identity import _store
    from cdplake.identity.incremental import pairs_touching
    from cdplake.io.delta import replace_rows

    model = load_model(spark, env.paths, model_version)
    records = silver_person_records(spark, env).cache()
    path = env.paths.table("identity", EDGES_TABLE)
    scored_path = env.paths.table("identity", SCORED_TABLE)
    current = _fingerprint(records).withColumn("model_version", F.lit(model.version))
    previous = None
    if incremental and _store.exists(spark, path) and _store.exists(spark, scored_path):
        previous = _store.read(spark, scored_path)
        if previous.where(F.col("model_version") != model.version).limit(1).count():
            previous = None
    if previous is None:
        n_records = records.count()
        scored = score(spark, records, model, cfg, run_id, checkpoint_dir=env.paths.checkpoint("splink"))
        _store.overwrite(scored.edges, path)
        _store.overwrite(current, scored_path)
        candidates, mode = scored.candidate_pairs, "full"
    else:
        record = ["source", "record_key"]
        changed = current.subtract(previous.select(*current.columns)).select(*record)
        gone = previous.select(*record).subtract(current.select(*record))
        touched = changed.unionByName(gone).distinct().localCheckpoint(eager=True)
        new = records.join(changed, record, "left_semi").localCheckpoint(eager=True)
        n_records = new.count()
        if not touched.isEmpty():
            old = _store.read(spark, path)
            if n_records:
                existing = records.join(changed, record, "left_anti")
                edges = score_incremental(
                    spark, existing, new, model, cfg, run_id, checkpoint_dir=env.paths.checkpoint("splink")
                ).localCheckpoint(eager=True)
            else:  # records only vanished
                edges = spark.createDataFrame([], old.schema)
            old_pairs = pairs_touching(old, touched)
            pair = ["source_l", "record_key_l", "source_r", "record_key_r"]
            replace_rows(edges.select(*old.columns), old_pairs, path, pair)
            scored_before = _store.read(spark, scored_path)
            replace_rows(
                current.join(changed, record, "left_semi"),
                scored_before.join(touched, record, "left_semi"),
                scored_path,
                record,
            )
        candidates, mode = 0, "incremental"
    written = _store.read(spark, path)
    counts = written.agg(
        F.count("*").alias("n"),
        F.count(F.when(F.col("match_probability") >= cfg.threshold_match_probability, 1)).alias("links"),
    ).first()
    records.unpersist()
    return ScoreResult(model.version, n_records, candidates, int(counts["n"]), int(counts["links"]), mode)
