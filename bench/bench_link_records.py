"""``link_records`` as a user runs it: a 1% batch with ``--incremental`` vs a full re-run.

    .venv/bin/python bench/bench_link_records.py --customers 4200 --reuse --reps 3
    .venv/bin/python bench/bench_link_records.py --customers 84000 --reuse

``bench_linkage.py --incremental`` times the steps of an incremental run (score the batch,
MERGE its pairs, update and MERGE the clusters) on records it already holds. This bench times
the entry point, everything included: read and check the input table, find the new records by
their fingerprints, score, MERGE the three output tables and read back the run's figures.

Per scale, on the lake ``bench_linkage.py`` builds (``--reuse`` takes a kept one):

1. the person records without the 1% batch (``bench_linkage.the_batch``) are written to a
   Delta table and ``link_records`` runs on it in full: it trains the model (timed, reported);
2. the table is overwritten with every record (the 1% arrives);
3. ``link_records --incremental`` on a copy of step 1's output (timed, ``--reps`` times);
4. ``link_records`` in full on every record with step 1's model (timed, ``--reps`` times).

Then the last repetition's tables are checked: the batch's pairs must equal the full
re-run's (key and weight), and the cluster table must equal a from-scratch clustering of the
incremental run's own pairs. Older pairs keep the weights of the 99% run (its term
frequencies), so how far they and the clusters drift from the full re-run is reported, not
required to be zero.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import sys
import time
from pathlib import Path

from bench_linkage import build_lake, cluster_from_scratch, the_batch
from pyspark.sql import DataFrame
from pyspark.sql import functions as F

from cdplake.config import load_env, load_linkage_config
from cdplake.identity.incremental import pairs_touching
from cdplake.identity.probabilistic import silver_person_records
from cdplake.identity.record_linking import link_records
from cdplake.io.session import build_session

REPO = Path(__file__).resolve().parents[1]
ID = "person_id"
SOURCE = "people"  # link_records names the source after the input's folder
PAIR_KEY = ["record_key_l", "record_key_r"]
CLUSTER_COLUMNS = ["record_key", "cluster_id", "component_id"]


def differing(a: DataFrame, b: DataFrame) -> int:
    """Rows in one frame and not the other, both ways."""
    return a.exceptAll(b).count() + b.exceptAll(a).count()


def compare(cfg, inc: DataFrame, full: DataFrame, batch: DataFrame) -> dict:
    """The incremental run's pairs against the full re-run's.

    Pairs touching the batch were scored with the term frequencies of every record, as in the
    full re-run: they must be equal. Older pairs keep the weights of the run that scored them
    (term frequencies of the 99%), so theirs may move a little in the full re-run."""
    keys = batch.select(F.lit(SOURCE).alias("source"), F.col(ID).alias("record_key"))
    on_batch = [pairs_touching(df, keys).dropDuplicates(PAIR_KEY).cache() for df in (inc, full)]
    w = [*PAIR_KEY, F.round("match_weight", 6).alias("w")]
    old = [df.join(b, PAIR_KEY, "left_anti") for df, b in zip((inc, full), on_batch, strict=True)]
    both_old = old[0].alias("i").join(old[1].alias("f"), PAIR_KEY)
    shift = F.abs(F.col("i.match_weight") - F.col("f.match_weight"))
    moved = both_old.agg(
        F.count(F.when(shift >= 1e-6, 1)).alias("moved"), F.max(shift).alias("max_shift")
    ).first()
    threshold = cfg.threshold_match_probability
    links = [df.where(F.col("match_probability") >= threshold).select(*PAIR_KEY) for df in (inc, full)]
    return {
        "batch_pairs": on_batch[0].count(),
        "batch_pairs_full": on_batch[1].count(),
        "batch_differ": differing(on_batch[0].select(*w), on_batch[1].select(*w)),
        "old_pairs": old[0].count(),
        "old_moved": moved["moved"],
        "old_max_shift": moved["max_shift"] or 0.0,
        "old_only_one": differing(old[0].select(*PAIR_KEY), old[1].select(*PAIR_KEY)),
        "links_differ": differing(*links),
    }


def full_clustering(cfg, pairs: DataFrame, people: DataFrame) -> DataFrame:
    """Every record clustered from scratch over ``pairs`` (the update path with all touched)."""
    keys = people.select(F.lit(SOURCE).alias("source"), F.col(ID).alias("record_key"))
    return cluster_from_scratch(keys, pairs, cfg).select(*CLUSTER_COLUMNS)


def timed(label: str, **kwargs) -> tuple[float, object]:
    started = time.monotonic()
    result = link_records(**kwargs)
    took = time.monotonic() - started
    print(f"  {label}: {took:.1f}s  {result}", file=sys.stderr)
    return took, result


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--customers", type=int, default=4200)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--reps", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="reuse a lake kept by bench_linkage.py --keep")
    args = parser.parse_args()
    cfg = load_linkage_config(REPO / "conf")
    spark = build_session(load_env("local", conf_dir=REPO / "conf"), app_name="cdplake-bench-link-records")
    env = build_lake(spark, args.customers, args.days, args.seed, reuse=args.reuse)
    root = Path(env.storage.root) / "bench_link_records"
    shutil.rmtree(root, ignore_errors=True)
    table, seeded, model = str(root / "input" / "people"), str(root / "seeded"), root / "model"
    records = silver_person_records(spark, env)
    flagged = records.select(
        F.col("unique_id").alias(ID), *cfg.columns, the_batch(records).alias("_in_batch")
    ).cache()
    people = flagged.drop("_in_batch")
    n = people.count()
    batch = flagged.where("_in_batch").drop("_in_batch")
    n_batch = batch.count()
    flagged.where(~F.col("_in_batch")).drop("_in_batch").write.format("delta").save(table)
    common = {
        "spark": spark,
        "input_path": table,
        "cfg": cfg,
        "id_column": ID,
        "checkpoint_dir": env.paths.checkpoint("splink"),
    }
    first, _ = timed("full run on the 99% (train + score + cluster)", output=seeded, **common)
    people.write.format("delta").mode("overwrite").save(table)
    model.mkdir(parents=True)
    saved = model / "bench.json"
    shutil.copy(Path(seeded) / "model.json", saved)

    incremental, full = [], []
    for rep in range(args.reps):
        out_inc, out_full = str(root / f"inc_{rep}"), str(root / f"full_{rep}")
        shutil.copytree(seeded, out_inc)
        took, res = timed(f"rep {rep + 1} incremental", output=out_inc, incremental=True, **common)
        if res.mode != "incremental" or res.batch_records != n_batch:
            raise SystemExit(f"expected an incremental run over {n_batch} records, got {res}")
        incremental.append((took, res))
        full.append(timed(f"rep {rep + 1} full re-run", output=out_full, model_path=str(saved), **common))

    def table_of(out: str, name: str) -> DataFrame:
        return spark.read.format("delta").load(f"{out}/{name}")

    inc_out, full_out = str(root / f"inc_{args.reps - 1}"), str(root / f"full_{args.reps - 1}")
    check = compare(cfg, table_of(inc_out, "pairs"), table_of(full_out, "pairs"), batch)
    clusters_wrong = differing(
        table_of(inc_out, "clusters").select(*CLUSTER_COLUMNS),
        full_clustering(cfg, table_of(inc_out, "pairs"), people),
    )
    clusters_vs_full = differing(
        table_of(inc_out, "clusters").select(*CLUSTER_COLUMNS),
        table_of(full_out, "clusters").select(*CLUSTER_COLUMNS),
    )
    res = incremental[-1][1]
    # The run derives its counts from the last run's and the batch's: they must be the tables'.
    pairs_inc = table_of(inc_out, "pairs")
    recount = (
        pairs_inc.count(),
        pairs_inc.where(F.col("match_probability") >= cfg.threshold_match_probability).count(),
        table_of(inc_out, "clusters").select("cluster_id").distinct().count(),
    )
    counts_wrong = recount != (res.pairs_written, res.links, res.clusters)
    inc_s = statistics.median(t for t, _ in incremental)
    full_s = statistics.median(t for t, _ in full)
    print(
        f"\n{n:,} records, batch {n_batch:,} ({res.scope_records:,} re-clustered); "
        f"full run on the 99% with training {first:.1f}s"
    )
    print(
        f"link_records --incremental {inc_s:.1f}s vs full re-run (same model) {full_s:.1f}s: "
        f"{full_s / inc_s:.1f}x (median of {args.reps}; each: "
        + ", ".join(f"{t:.1f}" for t, _ in incremental)
        + " vs "
        + ", ".join(f"{t:.1f}" for t, _ in full)
        + ")"
    )
    print(
        f"batch pairs: {check['batch_pairs']:,} incremental, {check['batch_pairs_full']:,} in the full re-run, "
        f"{check['batch_differ']:,} differ (key or weight)"
    )
    print(
        f"older pairs (kept, weighed with the 99%'s term frequencies): {check['old_pairs']:,}; "
        f"weight moved in the full re-run for {check['old_moved']:,}, at most {check['old_max_shift']:.4f}; "
        f"{check['old_only_one']:,} written by one run only; links differing {check['links_differ']:,}"
    )
    print(
        f"cluster rows differing from a full clustering of the incremental run's own pairs: "
        f"{clusters_wrong:,}; from the full re-run's clusters: {clusters_vs_full:,}"
    )
    print(
        f"counts reported (pairs, links, clusters): {(res.pairs_written, res.links, res.clusters)}; "
        f"counted in its tables: {recount}"
    )
    flagged.unpersist()
    spark.stop()
    if check["batch_differ"] or clusters_wrong or counts_wrong:
        raise SystemExit("the incremental run's batch pairs, clusters or counts are wrong")


if __name__ == "__main__":
    main()
