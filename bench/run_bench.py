"""End-to-end pipeline benchmark: wall time and rows/s per step at two demo scales.

    make bench                                  # default scales 500 and 5000 people, 3 runs
    .venv/bin/python bench/run_bench.py --scales 500 20000 --runs 3

Every run lands fresh demo data into a new lake under .bench/ and runs the pipeline once in
one Spark session (local[2], the `local` environment). Figures are medians over the runs;
paste the printed table into BENCHMARKS.md with the machine line.
"""

from __future__ import annotations

import argparse
import os
import platform
import shutil
import statistics
import subprocess
from pathlib import Path

from cdplake.config import load_env
from cdplake.io.session import build_session
from cdplake.pipeline import PipelineSummary, run_pipeline

REPO = Path(__file__).resolve().parents[1]
# 1-minute load average after each run: figures from a busy machine are not comparable.
LOADS: list[float] = []


def machine() -> str:
    cpu = platform.processor() or "unknown cpu"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
        mem_kb = int(Path("/proc/meminfo").read_text().split()[1])
        mem = f"{mem_kb / 1024 / 1024:.0f} GiB"
    except OSError:
        mem = "?"
    java = subprocess.run(["java", "-version"], capture_output=True, text=True).stderr.splitlines()[0]
    return f"{os.cpu_count()} cores ({cpu}), {mem} RAM, {java}, Python {platform.python_version()}"


def one_run(spark, customers: int, days: int, run: int) -> PipelineSummary:
    root = REPO / ".bench" / f"lake_{customers}_{run}"
    shutil.rmtree(root, ignore_errors=True)
    env = load_env(
        "local",
        conf_dir=REPO / "conf",
        environ={
            **os.environ,
            "CDPLAKE__STORAGE__ROOT": str(root),
            "CDPLAKE__DEMO__CUSTOMERS": str(customers),
            "CDPLAKE__DEMO__DAYS": str(days),
        },
    )
    summary = run_pipeline(spark, env, generate=True, run_id=f"bench_{customers}_{run}")
    shutil.rmtree(root, ignore_errors=True)
    LOADS.append(os.getloadavg()[0])
    return summary


def report(customers: int, runs: list[PipelineSummary]) -> str:
    names = [s.name for s in runs[0].steps]
    lines = [
        f"### {customers:,} people ({runs[0].steps[0].rows:,} raw records), median of {len(runs)} runs",
        "",
        "| step | seconds | rows | rows/s |",
        "|---|---:|---:|---:|",
    ]
    for i, name in enumerate(names):
        secs = statistics.median(r.steps[i].seconds for r in runs)
        rows = runs[0].steps[i].rows
        lines.append(f"| {name} | {secs:.1f} | {rows:,} | {rows / secs if secs else 0:,.0f} |")
    total = statistics.median(r.total_seconds for r in runs)
    lines.append(f"| **total** | **{total:.1f}** | | |")
    loads = ", ".join(f"{x:.1f}" for x in LOADS[-len(runs) :])
    lines.append(f"\n1-minute load average after each run: {loads}")
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--scales", type=int, nargs="+", default=[500, 5000])
    parser.add_argument("--days", type=int, default=30)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()

    env = load_env("local", conf_dir=REPO / "conf")
    spark = build_session(env, app_name="cdplake-bench")
    print(f"machine: {machine()}\n")
    for customers in args.scales:
        runs = [one_run(spark, customers, args.days, i) for i in range(args.runs)]
        print(report(customers, runs), "\n", flush=True)
    spark.stop()


if __name__ == "__main__":
    main()
