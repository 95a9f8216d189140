"""Incremental identity: a 1% batch of new records, incremental vs full (score + resolve).

    .venv/bin/python bench/bench_identity_incremental.py --customers 2000
    .venv/bin/python bench/bench_identity_incremental.py --customers 4200 --runs 3

Builds a demo lake up to silver under .bench/ (seeded), trains the linkage model, then holds
back 1% of every silver table's records (by a hash of the key) and resolves the other 99% in
full: that is the state a lake is in before a batch lands. The held-back rows are put back
and the batch is processed twice on the same data:

* incremental: ``score_probabilistic_edges(incremental=True)`` (the new person records
  against the rest, pairs MERGEd) + ``resolve_identities(incremental=True)`` (the changed
  records and the scope they link to, MERGEd);
* full: the same two steps in full, right after; since the incremental run already applied
  the batch, the full run must find no customer id to change (its change feed is checked,
  and record -> customer is compared with what the incremental run wrote).

Prints seconds of each step (median over ``--runs`` of the pair), records changed and in
scope, and whether the full run agreed.
"""

from __future__ import annotations

import argparse
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


def held_back(key: str):
    return F.abs(F.xxhash64(F.col(key).cast("string"))) % 100 == 0


def timed(fn):
    started = time.monotonic()
    out = fn()
    return out, time.monotonic() - started


def one_run(spark, env, cfg, run: int) -> dict[str, float | int | bool]:
    from delta.tables import DeltaTable

    batch = {}
    for table, key in SOURCES.items():
        path = env.paths.table("silver", table)
        rows = spark.read.format("delta").load(path).where(held_back(key)).localCheckpoint(eager=True)
        batch[table] = rows
        DeltaTable.forPath(spark, path).delete(held_back(key))
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
    after_inc = spark.read.format("delta").load(rc_path).drop("run_id").localCheckpoint(eager=True)
    _, t_full_score = timed(lambda: score_probabilistic_edges(spark, env, cfg, f"r{run}_full"))
    full, t_full_resolve = timed(lambda: resolve_identities(spark, env, f"r{run}_full"))
    after_full = spark.read.format("delta").load(rc_path).drop("run_id")
    same = after_full.exceptAll(after_inc).isEmpty() and after_inc.exceptAll(after_full).isEmpty()
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
        "full_found_no_change": full.id_changes == {} and same,
    }


def main() -> None:
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[attr-defined]
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--customers", type=int, default=2000)
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--runs", type=int, default=1)
    args = parser.parse_args()
    spark = build_session(load_env("local", conf_dir=REPO / "conf"), app_name="cdplake-bench-identity-inc")
    cfg = load_linkage_config(REPO / "conf")
    env, t_lake = timed(lambda: build_lake(spark, args.customers, args.days, args.seed))
    _, t_train = timed(lambda: train_linkage_model(spark, env, cfg))
    print(
        f"{args.customers:,} customers x {args.days} days: lake to silver {t_lake:.0f}s, training {t_train:.0f}s"
    )
    runs = [one_run(spark, env, cfg, i) for i in range(args.runs)]
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
