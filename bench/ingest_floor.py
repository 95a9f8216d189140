"""Landing → silver throughput against its floor: Spark reading the raw files and writing Delta once.

    .venv/bin/python bench/ingest_floor.py                       # 500 and 5000 people, 3 runs
    .venv/bin/python bench/ingest_floor.py --scales 200 --runs 1 # a quick check that it works

For each scale and run: generate the seeded demo data into a fresh lake under .bench/, then

- **floor**: for every source, one batch ``spark.read`` of the same landing files with the
  same reader options bronze uses (text for JSON lines, CSV with the contract schema) and one
  Delta write: the least any pipeline must do to get the raw files into Delta;
- **silver**: landing → bronze (streaming, availableNow) → silver (conform, row rules,
  dedupe, MERGE, quarantine, CRM history, reconciliation, and the Great Expectations suites
  unless ``--no-dataset-checks``), the same calls `make run` makes.

Both sides run in one session (local[2], the `local` environment); the floor runs first in
each round so the silver side pays no cold-JVM cost the floor did not. Printed figures are
medians; rows are raw landed records; the ratio is silver seconds / floor seconds (the
goal is within 3x).
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from run_bench import machine  # noqa: E402

from cdplake.bronze import ingest_all  # noqa: E402
from cdplake.bronze.sources import CORRUPT_RECORD, SOURCES, crm_schema_ddl  # noqa: E402
from cdplake.config import EnvConfig, load_env  # noqa: E402
from cdplake.io.session import build_session  # noqa: E402
from cdplake.landing import generate, write_landing  # noqa: E402
from cdplake.silver import build_silver  # noqa: E402


def lake_env(customers: int, days: int, run: int) -> EnvConfig:
    root = REPO / ".bench" / f"floor_{customers}_{run}"
    shutil.rmtree(root, ignore_errors=True)
    return load_env(
        "local",
        conf_dir=REPO / "conf",
        environ={
            **os.environ,
            "CDPLAKE__STORAGE__ROOT": str(root),
            "CDPLAKE__DEMO__CUSTOMERS": str(customers),
            "CDPLAKE__DEMO__DAYS": str(days),
        },
    )


def floor(spark, env: EnvConfig) -> int:
    """Read every source's landing files once and write them to Delta once; rows read."""
    rows = 0
    for name, spec in SOURCES.items():
        reader = spark.read.format(spec.format).option("recursiveFileLookup", "true")
        reader = reader.option("pathGlobFilter", spec.glob)
        if spec.format == "csv":
            reader = (
                reader.schema(crm_schema_ddl())
                .option("header", "true")
                .option("multiLine", "true")
                .option("escape", '"')
                .option("mode", "PERMISSIVE")
                .option("columnNameOfCorruptRecord", CORRUPT_RECORD)
            )
        df = reader.load(env.paths.landing(name))
        path = env.paths.table("floor", name)
        df.write.format("delta").mode("overwrite").save(path)
        rows += spark.read.format("delta").load(path).count()  # from the Delta log's stats
    return rows


def one_round(spark, customers: int, days: int, run: int, dataset_checks: bool) -> tuple[int, float, float]:
    env = lake_env(customers, days, run)
    write_landing(env, generate(env.demo))
    start = time.perf_counter()
    rows = floor(spark, env)
    floor_s = time.perf_counter() - start
    start = time.perf_counter()
    ingest_all(spark, env, f"bench_{run}")
    build_silver(spark, env, f"bench_{run}", dataset_checks=dataset_checks)
    silver_s = time.perf_counter() - start
    shutil.rmtree(env.storage.root, ignore_errors=True)
    return rows, floor_s, silver_s


def report(customers: int, rounds: list[tuple[int, float, float]], dataset_checks: bool) -> str:
    rows = rounds[0][0]
    floor_s = statistics.median(r[1] for r in rounds)
    silver_s = statistics.median(r[2] for r in rounds)
    checks = "with" if dataset_checks else "without"
    return "\n".join(
        [
            f"### {customers:,} people, {rows:,} raw records, median of {len(rounds)} runs "
            f"({checks} Great Expectations)",
            "",
            "| path | seconds | rows/s |",
            "|---|---:|---:|",
            f"| floor: read raw files, write Delta once | {floor_s:.1f} | {rows / floor_s:,.0f} |",
            f"| landing → bronze → silver | {silver_s:.1f} | {rows / silver_s:,.0f} |",
            f"| **silver / floor** | **{silver_s / floor_s:.1f}x** | |",
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-dataset-checks", action="store_true", help="skip the GX suites")
    args = parser.parse_args()

    env = load_env("local", conf_dir=REPO / "conf")
    spark = build_session(env, app_name="cdplake-bench-floor")
    spark.sparkContext.setLogLevel("ERROR")
    checks = not args.no_dataset_checks
    print(f"machine: {machine()}\n")
    for customers in args.scales:
        rounds = [one_round(spark, customers, args.days, i, checks) for i in range(args.runs)]
        print(report(customers, rounds, checks), "\n", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
