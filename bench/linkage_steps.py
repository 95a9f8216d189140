"""Time each step of cdplake's linkage on a lake kept by ``bench_linkage.py --keep``.

    .venv/bin/python bench/linkage_steps.py .bench/linkage_4200_30d_seed42 [--reps 2]

Steps: train (the configured engine), the cost guard (which builds the candidate pairs
when their bound is within budget), predict (with the count that
materialises it), connected components at the threshold, the over-merge guard. Repeat to
see warm figures: the first repetition pays JVM warm-up.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "lib"))

from pyspark.sql import functions as F  # noqa: E402

from cdplake.config import load_env, load_linkage_config  # noqa: E402
from cdplake.identity import probabilistic as P  # noqa: E402
from cdplake.io.session import build_session  # noqa: E402

T = TypeVar("T")


def timed(label: str, fn: Callable[[], T]) -> T:
    started = time.monotonic()
    out = fn()
    print(f"  {label}: {time.monotonic() - started:.2f}s", flush=True)
    return out


def one_repetition(spark, env, cfg, records) -> None:
    model = timed("train", lambda: P.train_model(spark, records, cfg, "steps"))
    db_api = P.splink_api(spark, cfg, env.paths.checkpoint("splink"))
    settings = dict(model.settings)
    settings["blocking_rules_to_generate_predictions"] = [
        P.splink_blocking_rule(r) for r in cfg.blocking_rules
    ]
    columns = tuple(c["output_column_name"] for c in settings["comparisons"])
    linker = P._linker(db_api, records, settings, columns)
    timed(
        "cost guard (bound, then build and count the pairs)",
        lambda: P.guarded_candidate_pairs(linker, records, cfg),
    )
    predictions = timed(
        "predict",
        lambda: linker.inference.predict(
            threshold_match_probability=cfg.min_match_probability_written or None, warning_mode="never"
        ),
    )
    timed("predict count", lambda: predictions.as_spark_dataframe().count())
    first = timed(
        "connected components",
        lambda: linker.clustering.cluster_pairwise_predictions_at_threshold(
            predictions, threshold_match_probability=cfg.threshold_match_probability
        ),
    )
    cut = first.as_spark_dataframe().select(
        "unique_id", "source", "record_key", F.col("cluster_id").cast("string")
    )
    pairs = predictions.as_spark_dataframe().select(
        "unique_id_l", "unique_id_r", F.col("match_probability").cast("double")
    )
    timed(
        "over-merge guard",
        lambda: P.split_too_large(cut, pairs, cfg.max_cluster_size, cfg.split_thresholds).count(),
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("lake", help="the lake root a bench run kept")
    parser.add_argument("--reps", type=int, default=2)
    args = parser.parse_args()
    env = load_env(
        "local", conf_dir=REPO / "conf", environ={**os.environ, "CDPLAKE__STORAGE__ROOT": args.lake}
    )
    cfg = load_linkage_config(REPO / "conf")
    spark = build_session(env, app_name="cdplake-linkage-steps")
    records = P.silver_person_records(spark, env).cache()
    print(f"{records.count():,} person records; training on {cfg.training.engine}")
    for rep in range(args.reps):
        print(f"repetition {rep + 1}")
        one_repetition(spark, env, cfg, records)
    spark.stop()


if __name__ == "__main__":
    main()
