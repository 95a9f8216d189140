"""Generate the seeded demo data and write it to the lake's landing zone and ground truth.

python jobs/generate_demo_data.py --env local --customers 2000 --days 60 --seed 7
"""

from __future__ import annotations

import argparse
import dataclasses
import time
from collections.abc import Sequence

from cdplake.config import load_env
from cdplake.landing import generate, write_landing


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--env", default="local", help="environment in conf/env (default: local)")
    parser.add_argument("--conf-dir", default=None, help="the conf/ folder (default: auto-detected)")
    parser.add_argument("--customers", type=int, default=None, help="override demo.customers")
    parser.add_argument("--days", type=int, default=None, help="override demo.days")
    parser.add_argument("--seed", type=int, default=None, help="override demo.seed")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> None:
    args = parse_args(argv)
    env = load_env(args.env, conf_dir=args.conf_dir)
    overrides = {k: getattr(args, k) for k in ("customers", "days", "seed") if getattr(args, k) is not None}
    demo = dataclasses.replace(env.demo, **overrides)
    started = time.monotonic()
    data = generate(demo)
    files = write_landing(env, data)
    records = data.lines_per_source()
    print(
        f"generated {demo.customers} customers x {demo.days} days (seed {demo.seed}) "
        f"in {time.monotonic() - started:.1f}s into {env.paths.landing()}"
    )
    for source, count in files.items():
        print(f"  {source:<7} {count:>5} files {records[source]:>8} records")
    print(
        f"  ground truth: {len(data.ground_truth)} record keys, {len(data.persons)} persons -> {env.paths.ground_truth()}"
    )


if __name__ == "__main__":
    main()
