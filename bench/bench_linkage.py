"""Probabilistic matching benchmark: cdplake linkage vs Splink as its documentation configures it.

    .venv/bin/python bench/bench_linkage.py --customers 150                  # quick check, ~300 records
    .venv/bin/python bench/bench_linkage.py --customers 4200 --incremental   # ~10k person records
    .venv/bin/python bench/bench_linkage.py --customers 84000                # ~200k person records

Per scale: generate seeded demo data into a fresh lake under .bench/, run landing -> bronze ->
silver, build the person-record view (CRM contacts, orders, identify events), then on the
same records and the same Spark session (local[2]):

* cdplake: ``conf/linkage.yaml`` trained (prior, u, EM) and scored, cost guard on;
* baseline: Splink's own Spark example (docs/demos/examples/spark/deduplicate_1k_synthetic)
  with its comparisons, blocking rules and training steps mapped onto our columns.

Both are scored against the generator's answer key (``ground_truth/records.csv``):
pairwise precision / recall / F1 of the links at the threshold, the same for clusters (every
pair of records in one cluster counts as a link), candidate pairs scored, and wall time.
``--incremental`` also scores a 1% batch of records against the other 99% and compares with
the full run (``--incremental-engines duckdb spark`` times both engines), then applies the
batch to a copy of the lake before it: its pairs MERGEd into the pair table, the clusters it
can change updated (:func:`cdplake.identity.cluster_update.update_clusters`) and MERGEd into
the cluster table, timed together and checked against Splink's full clustering of every record. ``--reps N`` repeats
the runs, cdplake and Splink taking turns going first, and prints the median run. The generator gives about 2.4 person records per customer (0.55 CRM contacts,
1.05 orders, 0.8 identify calls at 30 days); the exact count is printed per scale.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

from pyspark.sql import Column, DataFrame, SparkSession
from pyspark.sql import functions as F

from cdplake.config import load_env, load_linkage_config
from cdplake.config.linkage import TRAINING_ENGINES
from cdplake.identity.cluster_update import update_clusters
from cdplake.identity.incremental import pairs_touching
from cdplake.identity.probabilistic import (
    clusters,
    new_model_version,
    score,
    score_incremental,
    silver_person_records,
    train_model,
)
from cdplake.io.delta import replace_rows
from cdplake.io.session import build_session

REPO = Path(__file__).resolve().parents[1]
# generator source name -> silver table (the `source` of person records and edges)
TRUTH_SOURCES = {"crm": "crm_contacts", "orders": "orders", "events": "events"}
DOC_THRESHOLD = 0.9  # the Splink example predicts and clusters at match probability 0.9


@dataclasses.dataclass
class Outcome:
    name: str
    train_s: float
    score_s: float
    candidate_pairs: int
    pairwise: tuple[float, float, float]
    cluster: tuple[float, float, float]
    score_only_s: float = 0.0  # of score_s, scoring up to the edges counted (cdplake only)
    write_s: float = 0.0  # writing the pairs and clusters as Delta tables, after score_s (cdplake only)


def build_lake(spark: SparkSession, customers: int, days: int, seed: int, reuse: bool = False):
    from cdplake.bronze import ingest_all
    from cdplake.landing import generate, write_landing
    from cdplake.silver import build_silver

    root = REPO / ".bench" / f"linkage_{customers}_{days}d_seed{seed}"
    built = root / "ready"
    if not (reuse and built.exists()):
        shutil.rmtree(root, ignore_errors=True)
    env = load_env(
        "local",
        conf_dir=REPO / "conf",
        environ={
            **os.environ,
            "CDPLAKE__STORAGE__ROOT": str(root),
            "CDPLAKE__DEMO__CUSTOMERS": str(customers),
            "CDPLAKE__DEMO__DAYS": str(days),
            "CDPLAKE__DEMO__SEED": str(seed),
        },
    )
    if not (reuse and built.exists()):
        write_landing(env, generate(env.demo))
        ingest_all(spark, env, "bench_linkage")
        build_silver(spark, env, "bench_linkage")
        built.write_text("silver built\n")
    return env


def truth_frame(spark: SparkSession, env) -> DataFrame:
    """``unique_id, person_id`` from the answer key, in the person view's id format."""
    raw = spark.read.option("header", True).csv(env.paths.ground_truth() + "/records.csv")
    mapping = F.create_map(*[F.lit(x) for kv in TRUTH_SOURCES.items() for x in kv])
    return (
        raw.withColumn("source", mapping[F.col("source")])
        .where(F.col("source").isNotNull())
        .select(F.concat_ws(":", "source", "record_key").alias("unique_id"), "person_id")
        .distinct()
    )


def prf(tp: int, predicted: int, actual: int) -> tuple[float, float, float]:
    p = tp / predicted if predicted else 0.0
    r = tp / actual if actual else 0.0
    return p, r, (2 * p * r / (p + r) if p + r else 0.0)


def _pairs_of(counts: DataFrame, col: str = "n") -> int:
    return int(counts.agg(F.sum(F.col(col) * (F.col(col) - 1) / 2)).first()[0] or 0)


def true_pair_count(truth: DataFrame) -> int:
    return _pairs_of(truth.groupBy("person_id").agg(F.count("*").alias("n")))


def pairwise_metrics(links: DataFrame, truth: DataFrame, actual: int) -> tuple[float, float, float]:
    """``links``: ``unique_id_l, unique_id_r`` predicted to be one person."""
    t = truth.select("unique_id", "person_id")
    joined = links.join(
        t.withColumnRenamed("unique_id", "unique_id_l").withColumnRenamed("person_id", "p_l"), "unique_id_l"
    ).join(
        t.withColumnRenamed("unique_id", "unique_id_r").withColumnRenamed("person_id", "p_r"), "unique_id_r"
    )
    row = joined.agg(
        F.count("*").alias("n"), F.count(F.when(F.col("p_l") == F.col("p_r"), 1)).alias("tp")
    ).first()
    return prf(int(row["tp"]), int(row["n"]), actual)


def cluster_metrics(assigned: DataFrame, truth: DataFrame, actual: int) -> tuple[float, float, float]:
    """``assigned``: ``unique_id, cluster_id``; every pair inside a cluster is a predicted link."""
    joined = assigned.join(truth, "unique_id")
    predicted = _pairs_of(joined.groupBy("cluster_id").agg(F.count("*").alias("n")))
    tp = _pairs_of(joined.groupBy("cluster_id", "person_id").agg(F.count("*").alias("n")))
    return prf(tp, predicted, actual)


def run_cdplake(
    spark, records, truth, actual, cfg, checkpoint_dir, write_dir
) -> tuple[Outcome, DataFrame, object, DataFrame]:
    started = time.monotonic()
    model = train_model(spark, records, cfg, new_model_version(), checkpoint_dir=checkpoint_dir)
    trained = time.monotonic()
    scored = score(spark, records, model, cfg, "bench", checkpoint_dir=checkpoint_dir)
    edges = scored.edges.cache()
    edges.count()
    scored_at = time.monotonic()
    assigned = clusters(
        scored, cfg.threshold_match_probability, cfg.max_cluster_size, cfg.split_thresholds
    ).cache()
    assigned.count()
    done = time.monotonic()
    # What a full re-run also does, outside score_s: overwrite the pair and cluster tables.
    edges.write.format("delta").mode("overwrite").save(f"{write_dir}/pairs")
    assigned.write.format("delta").mode("overwrite").save(f"{write_dir}/clusters")
    written = time.monotonic()
    uid = lambda side: F.concat_ws(":", f"source_{side}", f"record_key_{side}").alias(f"unique_id_{side}")  # noqa: E731
    links = edges.where(F.col("match_probability") >= cfg.threshold_match_probability).select(
        uid("l"), uid("r")
    )
    out = Outcome(
        f"cdplake (conf/linkage.yaml, trained on {cfg.training.engine})",
        trained - started,
        done - trained,
        scored.candidate_pairs,
        pairwise_metrics(links, truth, actual),
        cluster_metrics(
            assigned.select(F.concat_ws(":", "source", "record_key").alias("unique_id"), "cluster_id"),
            truth,
            actual,
        ),
        score_only_s=scored_at - trained,
        write_s=written - done,
    )
    return out, edges, model, assigned


def run_splink_documented(spark, records, truth, actual, checkpoint_dir) -> Outcome:
    """Splink's Spark example, its column names mapped to ours (surname -> last_name, dob ->
    date_of_birth); settings, training steps and thresholds as the example has them."""
    import splink.comparison_library as cl
    from splink import Linker, SettingsCreator, SparkAPI, block_on

    settings = SettingsCreator(
        link_type="dedupe_only",
        comparisons=[
            cl.NameComparison("first_name"),
            cl.NameComparison("last_name"),
            cl.LevenshteinAtThresholds("date_of_birth"),
            cl.ExactMatch("city").configure(term_frequency_adjustments=True),
            cl.EmailComparison("email"),
        ],
        blocking_rules_to_generate_predictions=[block_on("first_name"), "l.last_name = r.last_name"],
        retain_intermediate_calculation_columns=True,
        em_convergence=0.01,
    )
    started = time.monotonic()
    db_api = SparkAPI(spark_session=spark)
    linker = Linker(
        db_api.register(
            records.select("unique_id", "first_name", "last_name", "date_of_birth", "city", "email")
        ),
        settings,
    )
    linker.training.estimate_probability_two_random_records_match(
        [
            "l.first_name = r.first_name and levenshtein(r.date_of_birth, l.date_of_birth) <= 1",
            "l.last_name = r.last_name and levenshtein(r.date_of_birth, l.date_of_birth) <= 1",
            "l.first_name = r.first_name and levenshtein(r.last_name, l.last_name) <= 2",
            "l.email = r.email",
        ],
        recall=0.6,
    )
    linker.training.estimate_u_using_random_sampling(max_pairs=5e5)
    linker.training.estimate_parameters_using_expectation_maximisation(
        "l.first_name = r.first_name and l.last_name = r.last_name"
    )
    linker.training.estimate_parameters_using_expectation_maximisation("l.date_of_birth = r.date_of_birth")
    trained = time.monotonic()
    predictions = linker.inference.predict(threshold_match_probability=DOC_THRESHOLD)
    links = predictions.as_spark_dataframe().select("unique_id_l", "unique_id_r").cache()
    links.count()
    assigned = linker.clustering.cluster_pairwise_predictions_at_threshold(predictions, DOC_THRESHOLD)
    assigned_df = (
        assigned.as_spark_dataframe().select("unique_id", F.col("cluster_id").cast("string")).cache()
    )
    assigned_df.count()
    done = time.monotonic()
    counted = linker.blocking_analysis.count_comparisons_from_blocking_rules(record_sample_proportion=1.0)
    return Outcome(
        "Splink as documented",
        trained - started,
        done - trained,
        int(counted[-1]["cumulative_comparison_count"]),
        pairwise_metrics(links, truth, actual),
        cluster_metrics(assigned_df, truth, actual),
    )


def the_batch(records: DataFrame) -> Column:
    """The 1% of records held back as the incremental batch."""
    return F.abs(F.xxhash64("unique_id")) % 100 == 0


def run_incremental(spark, records, model, cfg, full_edges, checkpoint_dir) -> tuple[float, str, DataFrame]:
    """Score a 1% batch against the rest; compare with the full run's pairs that touch it.

    Timed: :func:`score_incremental` up to its edges counted (with ``incremental.engine``
    as configured). Returns the seconds, a line to print and the batch's edges (cached)."""
    batch = the_batch(records)
    new, existing = records.where(batch).cache(), records.where(~batch).cache()
    n_new = new.count()
    existing.count()
    started = time.monotonic()
    inc = score_incremental(
        spark, existing, new, model, cfg, "bench_inc", checkpoint_dir=checkpoint_dir
    ).cache()
    n_inc = inc.count()
    took = time.monotonic() - started
    ids = new.select(F.col("source").alias("s"), F.col("record_key").alias("k"))
    touching = full_edges.join(
        ids,
        ((F.col("source_l") == F.col("s")) & (F.col("record_key_l") == F.col("k")))
        | ((F.col("source_r") == F.col("s")) & (F.col("record_key_r") == F.col("k"))),
        "left_semi",
    )
    key = ["source_l", "record_key_l", "source_r", "record_key_r"]
    both = inc.alias("i").join(touching.alias("f"), key)
    same = both.where(F.abs(F.col("i.match_weight") - F.col("f.match_weight")) < 1e-6).count()
    differing = both.where(F.abs(F.col("i.match_weight") - F.col("f.match_weight")) >= 1e-6).select(
        *key, F.col("i.match_weight").alias("incremental"), F.col("f.match_weight").alias("full")
    )
    for r in differing.limit(5).collect():
        print(f"  weight differs: {r.asDict()}")
    return (
        took,
        (
            f"incremental ({cfg.incremental.engine}): {n_new:,} new records (1%) scored in {took:.1f}s -> "
            f"{n_inc:,} pairs; the full run has {touching.count():,} pairs touching them, {same:,} with the same weight"
        ),
        inc,
    )


@dataclasses.dataclass
class ClusterBaseline:
    """The lake before the batch: the other 99%'s pairs and clusters (built once, untimed)."""

    pairs: DataFrame
    clusters: DataFrame


def cluster_baseline(records: DataFrame, full_edges: DataFrame, cfg) -> ClusterBaseline:
    """Pairs of the full run not touching the batch, and their clustering (cdplake's update
    with every record touched, i.e. a full clustering; the update's result is checked against
    Splink's full clustering, so a wrong baseline would show)."""
    keys = records.where(~the_batch(records)).select("source", "record_key").cache()
    pairs = pairs_touching(full_edges, records.where(the_batch(records)).select("source", "record_key"))
    before = full_edges.join(
        pairs, ["source_l", "record_key_l", "source_r", "record_key_r"], "left_anti"
    ).cache()
    clustered = cluster_from_scratch(keys, before, cfg).cache()
    clustered.count()
    return ClusterBaseline(pairs=before, clusters=clustered)


def cluster_from_scratch(keys: DataFrame, pairs: DataFrame, cfg) -> DataFrame:
    """Every record of ``keys`` (``source, record_key``) clustered over ``pairs`` with the
    configured threshold and guard: the update path with no previous clusters and every
    record touched, on Spark."""
    return update_clusters(
        keys.limit(0).withColumn("cluster_id", F.lit(None).cast("string")),
        keys,
        pairs,
        keys,
        cfg.threshold_match_probability,
        max_cluster_size=cfg.max_cluster_size,
        split_thresholds=cfg.split_thresholds,
        max_rounds=3,
    ).clusters


def run_cluster_update(spark, env, records, inc_edges, baseline: ClusterBaseline, assigned, cfg, rep: int):
    """Apply the batch to a copy of the lake before it: MERGE its pairs into the pair table,
    update the clusters (:func:`update_clusters`) and MERGE them into the cluster table.

    Timed: those three steps. Returns the seconds and a line to print, which also says how
    many records' clusters differ from Splink's full clustering of every record (0 = equal)."""
    root = f"{env.storage.root}/bench_cluster_update/{rep}"
    shutil.rmtree(root, ignore_errors=True)
    pairs_path, clusters_path = f"{root}/pairs", f"{root}/clusters"
    baseline.pairs.write.format("delta").save(pairs_path)
    baseline.clusters.write.format("delta").save(clusters_path)
    touched = records.where(the_batch(records)).select("source", "record_key").cache()
    touched.count()
    record = ["source", "record_key"]
    started = time.monotonic()
    old_pairs = spark.read.format("delta").load(pairs_path)
    replace_rows(
        inc_edges.select(*old_pairs.columns),
        pairs_touching(old_pairs, touched),
        pairs_path,
        ["source_l", "record_key_l", "source_r", "record_key_r"],
    )
    merged_pairs = time.monotonic()
    previous = spark.read.format("delta").load(clusters_path)
    update = update_clusters(
        previous,
        records.select(*record),
        spark.read.format("delta").load(pairs_path),
        touched,
        cfg.threshold_match_probability,
        max_cluster_size=cfg.max_cluster_size,
        split_thresholds=cfg.split_thresholds,
        driver_max_records=cfg.incremental.cluster_driver_max,
    )
    new_rows = update.clusters.localCheckpoint(eager=True)
    # The scope's keys stand for its old rows: a key the table lacks matches nothing.
    replace_rows(new_rows, update.scope, clusters_path, record)
    took = time.monotonic() - started
    final = spark.read.format("delta").load(clusters_path)
    full = assigned.select(*record, F.col("cluster_id").alias("full_id"))
    differing = final.join(full, record, "full_outer").where(
        ~F.col("cluster_id").eqNullSafe(F.col("full_id"))
    )
    return took, (
        f"cluster update: {update.scope.count():,} records in scope ({update.rounds} rounds), "
        f"{took:.1f}s (pairs MERGE {merged_pairs - started:.1f}s, clusters {took - (merged_pairs - started):.1f}s); "
        f"records whose cluster differs from the full clustering: {differing.count():,}"
    )


def median_outcome(outcomes: list[Outcome]) -> Outcome:
    """The outcome with the median total time (accuracy is the same run to run)."""
    ranked = sorted(outcomes, key=lambda o: o.train_s + o.score_s)
    return ranked[(len(ranked) - 1) // 2]


def row(o: Outcome) -> str:
    pw = " / ".join(f"{x:.3f}" for x in o.pairwise)
    cl_ = " / ".join(f"{x:.3f}" for x in o.cluster)
    return f"| {o.name} | {o.candidate_pairs:,} | {pw} | {cl_} | {o.train_s:.0f} | {o.score_s:.0f} |"


def main() -> None:
    # progress lines should appear as they happen when the output goes to a file
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, nargs="+", default=[150])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--incremental", action="store_true", help="also time a 1%% batch vs the full run")
    parser.add_argument("--no-baseline", action="store_true", help="skip Splink-as-documented")
    parser.add_argument(
        "--train-engines",
        nargs="+",
        choices=TRAINING_ENGINES,
        help="run cdplake once per training engine (default: the one conf/linkage.yaml names)",
    )
    parser.add_argument(
        "--build-only",
        action="store_true",
        help="build (and keep) the lakes, then stop: time a later --reuse run",
    )
    parser.add_argument(
        "--reps",
        type=int,
        default=1,
        help="repetitions; cdplake and Splink take turns going first, medians are reported",
    )
    parser.add_argument(
        "--incremental-engines",
        nargs="+",
        choices=TRAINING_ENGINES,
        help="time the 1%% batch once per engine (default: the one conf/linkage.yaml names)",
    )
    parser.add_argument("--keep", action="store_true", help="keep the lakes under .bench/")
    parser.add_argument(
        "--reuse",
        action="store_true",
        help="reuse a lake kept by --keep with the same scale and seed (implies --keep)",
    )
    args = parser.parse_args()
    cfg = load_linkage_config(REPO / "conf")
    spark = build_session(load_env("local", conf_dir=REPO / "conf"), app_name="cdplake-bench-linkage")
    for customers in args.customers:
        t0 = time.monotonic()
        env = build_lake(spark, customers, args.days, args.seed, reuse=args.reuse)
        if args.build_only:
            print(
                f"lake for {customers:,} customers built in {time.monotonic() - t0:.0f}s under {env.storage.root}"
            )
            continue
        records = silver_person_records(spark, env).cache()
        truth = truth_frame(spark, env).join(records.select("unique_id"), "unique_id").cache()
        n = records.count()
        missing = n - truth.count()
        actual = true_pair_count(truth)
        per_source = {r["source"]: r["count"] for r in records.groupBy("source").count().collect()}
        print(
            f"\n### {customers:,} customers -> {n:,} person records {per_source} "
            f"({actual:,} true pairs; {missing} records without ground truth; lake built in {time.monotonic() - t0:.0f}s)\n"
        )
        checkpoint_dir = env.paths.checkpoint("splink")
        print(
            "| engine | candidate pairs | pairwise P / R / F1 | cluster P / R / F1 | train s | score+cluster s |"
        )
        print("|---|---:|---|---|---:|---:|")
        runs: dict[str, list[Outcome]] = {}
        for rep in range(args.reps):
            contenders: list[str | None] = list(args.train_engines or [cfg.training.engine])
            if not args.no_baseline:
                contenders.append(None)  # Splink as documented
            if rep % 2:
                contenders.reverse()  # take turns going first: the first run pays the JVM's warm-up
            for engine in contenders:
                if engine is None:
                    outcome = run_splink_documented(spark, records, truth, actual, checkpoint_dir)
                else:
                    run_cfg = dataclasses.replace(
                        cfg, training=dataclasses.replace(cfg.training, engine=engine)
                    )
                    outcome, edges, model, assigned = run_cdplake(
                        spark,
                        records,
                        truth,
                        actual,
                        run_cfg,
                        checkpoint_dir,
                        f"{env.storage.root}/bench_full",
                    )
                runs.setdefault(outcome.name, []).append(outcome)
                print(f"  rep {rep + 1}: {row(outcome)}", file=sys.stderr)
        for outcomes in runs.values():
            print(row(median_outcome(outcomes)))
        if args.reps > 1:
            print(f"\nmedian of {args.reps} runs; each run's train + score/cluster seconds:")
            for name, outcomes in runs.items():
                print(f"  {name}: " + ", ".join(f"{o.train_s:.0f} + {o.score_s:.0f}" for o in outcomes))
        if args.incremental:
            ours = [o for name, o in runs.items() if name.startswith("cdplake")][0]
            full_rerun = statistics.median(o.score_s for o in ours)
            full_score = statistics.median(o.score_only_s for o in ours)
            full_write = statistics.median(o.write_s for o in ours)
            baseline = None
            for engine in args.incremental_engines or [cfg.incremental.engine]:
                inc_cfg = dataclasses.replace(
                    cfg, incremental=dataclasses.replace(cfg.incremental, engine=engine)
                )
                timings = []
                for _ in range(args.reps):
                    took, line, inc_edges = run_incremental(
                        spark, records, model, inc_cfg, edges, checkpoint_dir
                    )
                    timings.append(took)
                    print("\n" + line)
                median = statistics.median(timings)
                print(
                    f"incremental ({engine}) median {median:.1f}s vs a full re-run's scoring {full_score:.1f}s "
                    f"({full_score / median:.1f}x) and its score + cluster {full_rerun:.1f}s "
                    f"({full_rerun / median:.1f}x)"
                )
                if baseline is None:
                    baseline = cluster_baseline(records, edges, cfg)
                updates = []
                for rep in range(args.reps):
                    took, line = run_cluster_update(
                        spark, env, records, inc_edges, baseline, assigned, cfg, rep
                    )
                    updates.append(took)
                    print(line)
                both = median + statistics.median(updates)
                print(
                    f"incremental ({engine}) score + cluster update, MERGEs included: {median:.1f}s + "
                    f"{statistics.median(updates):.1f}s = {both:.1f}s vs a full re-run's score + cluster "
                    f"{full_rerun:.1f}s ({full_rerun / both:.1f}x), {full_rerun + full_write:.1f}s with its "
                    f"pair and cluster tables written ({(full_rerun + full_write) / both:.1f}x)"
                )
        if not (args.keep or args.reuse):
            shutil.rmtree(env.storage.root, ignore_errors=True)
    print(f"\n{os.cpu_count()} cores, local[2]; a shared machine makes wall times noisy.")
    spark.stop()


if __name__ == "__main__":
    main()
