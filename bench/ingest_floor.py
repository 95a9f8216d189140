"""Landing → silver throughput against its floor: Spark reading the raw files and writing Delta once.

    .venv/bin/python bench/ingest_floor.py                       # 500 and 5000 people, 3 runs
    .venv/bin/python bench/ingest_floor.py --scales 200 --runs 1 # a quick check that it works

For each scale and run: generate the seeded demo data into a fresh lake under .bench/, then

- **floor**: for every source, one batch ``spark.read`` of the same landing files with the
  same reader options bronze uses (text for JSON lines, CSV with the contract schema) and one
  Delta write: the least any pipeline must do to get the raw files into Delta;
- **silver**: landing → bronze (streaming, availableNow) → silver (conform, row rules,
  dedupe, MERGE, quarantine, CRM history, reconciliation, and the Great Expectations suites
  unless ``--no-dataset-checks``), the same calls `make run` makes;
- **lean** (``--lean``): the per-row work of landing → silver with the pipeline's fixed costs
  taken out: per source (side by side, as the pipeline runs them) one batch read, bronze's
  contract check and lineage, one bronze write, then silver's conform and row rules on the
  cached bronze rows and one plain append each of silver and quarantine. No streams, no
  dedupe or MERGE, no CRM history, no counts, no suites. Lean / floor is about as low as
  silver / floor can go while bronze's contract check and silver's conform stay what they
  are; going lower means cheaper column work (e.g. one parse for both), not fewer jobs.

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
from functools import partial
from pathlib import Path

from pyspark.sql import functions as F

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "bench"))

from run_bench import machine  # noqa: E402

from cdplake.bronze import ingest_all  # noqa: E402
from cdplake.bronze.csv_header import by_header  # noqa: E402
from cdplake.bronze.ingest import (  # noqa: E402
    BRONZE_STATS,
    landing_columns,
    landing_reader,
    with_contract,
    with_lineage,
)
from cdplake.bronze.sources import CORRUPT_RECORD, SOURCES, crm_schema_ddl  # noqa: E402
from cdplake.config import EnvConfig, load_env  # noqa: E402
from cdplake.config.contracts import load_contract  # noqa: E402
from cdplake.io.concurrent import run_side_by_side  # noqa: E402
from cdplake.io.delta import append, stats_on  # noqa: E402
from cdplake.io.frames import materialize, release  # noqa: E402
from cdplake.io.session import build_session  # noqa: E402
from cdplake.landing import generate, write_landing  # noqa: E402
from cdplake.silver import SILVER_TABLES, build_silver  # noqa: E402
from cdplake.silver._common import records_of_quarantined_rows, split_checked  # noqa: E402
from cdplake.silver.build import QUARANTINE_STATS, table_quality, with_rule_reasons  # noqa: E402


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


def lean_source(spark, env: EnvConfig, name: str) -> int:
    """One source's bronze and silver per-row work in one batch pass; bronze rows written."""
    spec = SOURCES[name]
    contract = load_contract(name, env.conf_dir)
    raw = landing_columns(landing_reader(spark.read, spec).load(env.paths.landing(name)), spec)
    if spec.format == "csv":
        raw, _ = by_header(raw, contract)
    bronze = with_lineage(with_contract(raw, contract), batch_id="lean:0", ingested_at=F.current_timestamp())
    bronze = bronze.persist()
    try:
        bronze_path = env.paths.table("lean_bronze", name)
        append(bronze, bronze_path, app_id="lean", version=0, properties=BRONZE_STATS)
        for table in (t for t in SILVER_TABLES.values() if t.source == name):
            # Conformed once for both writes, as the pipeline does.
            checked = materialize(
                records_of_quarantined_rows(
                    with_rule_reasons(
                        table.check(bronze, env.pipeline.default_phone_region), table_quality(env, table.name)
                    )
                )
            )
            silver, quarantine = split_checked(checked, table.columns)
            silver_path = env.paths.table("lean_silver", table.name)
            append(silver, silver_path, app_id="lean", version=0, properties=stats_on(*table.stats_columns))
            quarantine_path = env.paths.table("lean_quarantine", table.source)
            append(quarantine, quarantine_path, app_id="lean", version=0, properties=QUARANTINE_STATS)
            release(checked)
        return spark.read.format("delta").load(bronze_path).count()
    finally:
        bronze.unpersist()


def lean(spark, env: EnvConfig) -> int:
    """Every source's lean pass, side by side as the pipeline runs its sources; bronze rows."""
    tasks = {name: partial(lean_source, spark, env, name) for name in SOURCES}
    return sum(run_side_by_side(tasks, env.pipeline.source_workers).values())


Round = tuple[int, float, float, float | None]


def one_round(spark, customers: int, days: int, run: int, dataset_checks: bool, with_lean: bool) -> Round:
    env = lake_env(customers, days, run)
    write_landing(env, generate(env.demo))
    start = time.perf_counter()
    rows = floor(spark, env)
    floor_s = time.perf_counter() - start
    start = time.perf_counter()
    ingest_all(spark, env, f"bench_{run}")
    build_silver(spark, env, f"bench_{run}", dataset_checks=dataset_checks)
    silver_s = time.perf_counter() - start
    lean_s = None
    if with_lean:
        start = time.perf_counter()
        if lean(spark, env) != rows:
            raise AssertionError("the lean pass wrote a different number of bronze rows than the floor")
        lean_s = time.perf_counter() - start
    shutil.rmtree(env.storage.root, ignore_errors=True)
    return rows, floor_s, silver_s, lean_s


def report(customers: int, rounds: list[Round], dataset_checks: bool) -> str:
    rows = rounds[0][0]
    floor_s = statistics.median(r[1] for r in rounds)
    silver_s = statistics.median(r[2] for r in rounds)
    checks = "with" if dataset_checks else "without"
    lean_lines = []
    if rounds[0][3] is not None:
        lean_s = statistics.median(r[3] for r in rounds)
        lean_lines = [
            f"| lean: the same per-row work, each table written once | {lean_s:.1f} | {rows / lean_s:,.0f} |",
            f"| **lean / floor** | **{lean_s / floor_s:.1f}x** | |",
        ]
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
            *lean_lines,
        ]
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--no-dataset-checks", action="store_true", help="skip the GX suites")
    parser.add_argument("--lean", action="store_true", help="also time the lean pass (see above)")
    args = parser.parse_args()

    env = load_env("local", conf_dir=REPO / "conf")
    spark = build_session(env, app_name="cdplake-bench-floor")
    spark.sparkContext.setLogLevel("ERROR")
    checks = not args.no_dataset_checks
    print(f"machine: {machine()}\n")
    for customers in args.scales:
        rounds = [one_round(spark, customers, args.days, i, checks, args.lean) for i in range(args.runs)]
        print(report(customers, rounds, checks), "\n", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
