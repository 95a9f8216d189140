"""Ingest newly landed files into the bronze Delta tables (landing → bronze).

spark-submit jobs/ingest_bronze.py --env local
"""

from __future__ import annotations

from collections.abc import Sequence

from cdplake.bronze import ingest_all
from cdplake.cli import job_parser, load_from_args, new_run_id
from cdplake.io.session import build_session


def main(argv: Sequence[str] | None = None) -> None:
    args = job_parser(__doc__.splitlines()[0]).parse_args(argv)
    cfg = load_from_args(args)
    run_id = args.run_id or new_run_id()
    spark = build_session(cfg, app_name="cdplake-ingest-bronze")
    results = ingest_all(spark, cfg, run_id)
    for source, res in results.items():
        print(
            f"bronze {source:<8} rows {res.rows:>10,}  files {res.files:>6,}  batches {res.batches}",
            flush=True,
        )


if __name__ == "__main__":
    main()
