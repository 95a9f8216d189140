"""Run the whole lake once: (demo data →) landing → bronze → silver → identity → gold.

spark-submit jobs/run_pipeline.py --env local --generate
cdplake-run --env s3
"""

from __future__ import annotations

from collections.abc import Sequence

from cdplake.cli import job_parser, load_from_args, parse_as_of
from cdplake.io.session import build_session
from cdplake.pipeline import run_pipeline


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("--generate", action="store_true", help="generate and land seeded demo data first")
    parser.add_argument("--customers", type=int, default=None, help="demo scale: number of people")
    parser.add_argument("--days", type=int, default=None, help="demo scale: days of activity")
    parser.add_argument("--seed", type=int, default=None, help="demo generator seed")
    parser.add_argument("--as-of", default=None, help="clock for time windows (ISO date or date-time, UTC)")
    args = parser.parse_args(argv)
    cfg = load_from_args(
        args, {"demo.customers": args.customers, "demo.days": args.days, "demo.seed": args.seed}
    )
    spark = build_session(cfg, app_name="cdplake-run-pipeline")
    summary = run_pipeline(
        spark, cfg, generate=args.generate, run_id=args.run_id, as_of=parse_as_of(args.as_of)
    )
    print(summary.render(), flush=True)


if __name__ == "__main__":
    main()
