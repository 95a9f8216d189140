"""Ingest newly landed files into the bronze Delta tables (landing → bronze).

spark-submit jobs/ingest_bronze.py --env local                        # scheduled: new files, then stop
spark-submit jobs/ingest_bronze.py --env local --trigger "30 seconds"  # continuous until stopped
"""

from __future__ import annotations

from collections.abc import Sequence

from cdplake.bronze import ingest_all, start_all
from cdplake.cli import job_parser, load_from_args, new_run_id
from cdplake.io.delta import AVAILABLE_NOW
from cdplake.io.session import build_session


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument(
        "--trigger",
        default=AVAILABLE_NOW,
        help='"availableNow" (default: ingest what has landed, then stop) or a processing-time '
        'interval such as "30 seconds" (keep ingesting until the job is stopped)',
    )
    args = parser.parse_args(argv)
    cfg = load_from_args(args)
    run_id = args.run_id or new_run_id()
    spark = build_session(cfg, app_name="cdplake-ingest-bronze")
    if args.trigger != AVAILABLE_NOW:
        start_all(spark, cfg, run_id, args.trigger)
        spark.streams.awaitAnyTermination()  # a failed query ends the job with its error
        return
    results = ingest_all(spark, cfg, run_id)
    for source, res in results.items():
        print(
            f"bronze {source:<8} rows {res.rows:>10,}  files {res.files:>6,}  "
            f"problem files {res.problem_files:>4,}  batches {res.batches}",
            flush=True,
        )


if __name__ == "__main__":
    main()
