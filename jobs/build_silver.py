"""Conform, deduplicate and merge new bronze rows into the silver tables (bronze → silver).

spark-submit jobs/build_silver.py --env local
"""

from __future__ import annotations

from collections.abc import Sequence

from cdplake.cli import job_parser, load_from_args, new_run_id
from cdplake.io.session import build_session
from cdplake.silver import build_silver


def main(argv: Sequence[str] | None = None) -> None:
    args = job_parser(__doc__.splitlines()[0]).parse_args(argv)
    cfg = load_from_args(args)
    run_id = args.run_id or new_run_id()
    spark = build_session(cfg, app_name="cdplake-build-silver")
    results = build_silver(spark, cfg, run_id)
    for table, res in results.items():
        print(
            f"silver {table:<13} in {res.rows_in:>9,}  out {res.rows_out:>9,}  "
            f"quarantined {res.rows_quarantined:>7,}  deduplicated {res.rows_deduplicated:>7,}",
            flush=True,
        )
        for rule_id, action, rows in res.rule_failures:
            print(f"  rule {rule_id} ({action}): {rows:,} rows", flush=True)
        for check in res.checks:
            print(f"  expectations {check.table}: {check.passed} of {check.expectations} passed", flush=True)


if __name__ == "__main__":
    main()
