"""Incremental identity: a 1% batch of new records, incremental vs full (score + resolve).

    .venv/bin/python bench/bench_identity_incremental.py --customers 2000
    .venv/bin/python bench/bench_identity_incremental.py --customers 4200 --runs 3

Builds a demo lake up to silver under .bench/ (seeded), trains the linkage model, then holds
back a 1% batch and resolves the rest in full: that is the state a lake is in before the batch
lands. ``--batch people`` (default) holds back every record of 1% of the true people (new
customers arriving, by the generator's answer key); ``--batch records`` 1% of every silver
table's records by a hash of the key (activity spread over many known customers). The held-back rows are put back
and the batch is processed twice on the same data:

* incremental: ``score_probabilistic_edges(incremental=True)`` (the new person records
  against the rest, pairs MERGEd) + ``resolve_identities(incremental=True)`` (the changed
  records and the scope they link to, MERGEd);
* full: the same two steps in full, right after; since the incremental run already applied
  the batch, a full resolve of the same pairs must find no customer id to change (its change
  feed is checked, and record -> customer is compared with what the incremental run wrote).
  Full rescoring then recomputes term frequencies over all records, so some pair weights
  move; the pairs that differ and the ids that then change are printed too.

Prints seconds of each step (median over ``--runs`` of the pair), records changed and in
scope, and whether the full run agreed.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from pathlib import Path

from pyspark.sql import functions as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from bench_linkage import build_lake  # noqa: E402

from cdplake.config import load_env, load_linkage_config  # noqa: E402
from cdplake.identity import resolve_identities, score_probabilistic_edges, train_linkage_model  # noqa: E402
from cdplake.identity.extract import SOURCES  # noqa: E402
from cdplake.io.session import build_session  # noqa: E402

TRUTH_TABLES = {"crm": "crm_contacts", "orders": "orders", "events": "events", "email": "email_events"}


def in_batch(hashed):
    return F.abs(F.xxhash64(hashed)) % 100 == 0


def batch_filters(spark, env, kind: str) -> dict[str, object]:
    """Per silver table, the rows of the 1% batch: a 1% sample of records, or of people."""
    if kind == "records":
        return {table: in_batch(F.col(key).cast("string")) for table, key in SOURCES.items()}
    truth = spark.read.option("header", True).csv(env.paths.ground_truth() + "/records.csv")
    chosen = truth.where(in_batch(F.col("person_id")))
    out = {}
    for source, table in TRUTH_TABLES.items():
        keys = [
            r["record_key"] for r in chosen.where(F.col("source") == source).select("record_key").collect()
        ]
        out[table] = F.col(SOURCES[table]).cast("string").isin(keys)
    return out


def timed(fn):
    started = time.monotonic()
    out = fn()
    return out, time.monotonic() - started


def one_run(spark, env, cfg, run: int, kind: str) -> dict[str, float | int | bool]:
    from delta.tables import DeltaTable

    batch = {}
    for table, held_back in batch_filters(spark, env, kind).items():
        path = env.paths.table("silver", table)
        rows = spark.read.format("delta").load(path).where(held_back).localCheckpoint(eager=True)
        batch[table] = rows
        DeltaTable.forPath(spark, path).delete(held_back)
    score_probabilistic_edges(spark, env, cfg, f"r{run}_base")
    resolve_identities(spark, env, f"r{run}_base")
    n_batch = sum(df.count() for df in batch.values())
    for table, rows in batch.items():
        rows.write.format("delta").mode("append").save(env.paths.table("silver", table))

    inc_score, t_inc_score = timed(
        lambda: score_probabilistic_edges(spark, env, cfg, f"r{run}_inc", incremental=True)
    )
    inc, t_inc_resolve = timed(lambda: resolve_identities(spark, env, f"r{run}_inc", incremental=True))
    rc_path = env.paths.table("identity", "record_customer")

    def record_customer():
        return spark.read.format("delta").load(rc_path).drop("run_id").localCheckpoint(eager=True)

    def same(a, b) -> bool:
        return a.exceptAll(b).isEmpty() and b.exceptAll(a).isEmpty()

    after_inc = record_customer()
    # the same pairs resolved in full: must agree with the incremental resolve exactly
    check, t_full_resolve = timed(lambda: resolve_identities(spark, env, f"r{run}_check"))
    resolve_agrees = check.id_changes == {} and same(record_customer(), after_inc)
    edges_path = env.paths.table("identity", "probabilistic_edges")
    inc_edges = spark.read.format("delta").load(edges_path).drop("run_id").localCheckpoint(eager=True)
    _, t_full_score = timed(lambda: score_probabilistic_edges(spark, env, cfg, f"r{run}_full"))
    full_edges = spark.read.format("delta").load(edges_path).drop("run_id")
    pair = ["source_l", "record_key_l", "source_r", "record_key_r"]
    joined = inc_edges.alias("i").join(full_edges.alias("f"), pair, "full_outer")
    differing = joined.where(
        F.col("i.match_weight").isNull()
        | F.col("f.match_weight").isNull()
        | (F.abs(F.col("i.match_weight") - F.col("f.match_weight")) > 1e-6)
    ).count()
    full = resolve_identities(spark, env, f"r{run}_full")
    return {
        "batch_records": n_batch,
        "person_records_scored": inc_score.records,
        "mode": inc.mode,
        "changed": inc.changed_records,
        "scope": inc.scope_records,
        "records": inc.records,
        "inc_score_s": t_inc_score,
        "inc_resolve_s": t_inc_resolve,
        "full_score_s": t_full_score,
        "full_resolve_s": t_full_resolve,
        "full_resolve_agrees": resolve_agrees,
        "pairs_differing_after_full_rescore": differing,
        "ids_changed_after_full_rescore": sum(full.id_changes.values()),
    }


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", type=int, default=1)
    parser.add_argument("--reuse", action="store_true", help="reuse the lake and model a previous run left")
    parser.add_argument(
        "--batch",
        choices=("records", "people"),
        default="people",
        help="the 1%% batch: every record of 1%% of the people (new customers arriving), or 1%% of all records",
    )
    args = parser.parse_args()
    spark = build_session(load_env("local", conf_dir=REPO / "conf"), app_name="cdplake-bench-identity-inc")
    cfg = load_linkage_config(REPO / "conf")
    root = REPO / ".bench" / f"linkage_{args.customers}"
    if args.reuse and (root / "models").exists():
        env = load_env(
            "local", conf_dir=REPO / "conf", environ={**os.environ, "CDPLAKE__STORAGE__ROOT": str(root)}
        )
        t_lake = t_train = 0.0
    else:
        env, t_lake = timed(lambda: build_lake(spark, args.customers, args.days, args.seed))
        _, t_train = timed(lambda: train_linkage_model(spark, env, cfg))
    print(
        f"{args.customers:,} customers x {args.days} days: lake to silver {t_lake:.0f}s, training {t_train:.0f}s"
    )
    runs = [one_run(spark, env, cfg, i, args.batch) for i in range(args.runs)]
    for r in runs:
        print(r)
    med = {k: statistics.median(float(r[k]) for r in runs) for k in runs[0] if k.endswith("_s")}
    inc_total, full_total = (
        med["inc_score_s"] + med["inc_resolve_s"],
        med["full_score_s"] + med["full_resolve_s"],
    )
    print(
        f"\nmedian of {len(runs)}: incremental score {med['inc_score_s']:.1f}s + resolve {med['inc_resolve_s']:.1f}s "
        f"= {inc_total:.1f}s; full score {med['full_score_s']:.1f}s + resolve {med['full_resolve_s']:.1f}s "
        f"= {full_total:.1f}s; speed-up {full_total / inc_total:.1f}x"
    )
    spark.stop()


if __name__ == "__main__":
    main()
