"""Answer a data-subject request: export or erase everything the lake holds about one person.

python jobs/subject_request.py --env local export --email ann@x.com --out /tmp/ann
python jobs/subject_request.py --env local erase --email ann@x.com

The person is named by --customer-id, --email or --phone. ``export`` writes the person's
rows of every table as JSON lines with a manifest; ``erase`` deletes them everywhere and logs
counts (no personal data) to privacy/erasure_log. VACUUM the tables after their retention
period to remove the deleted rows from older versions too.
"""

from __future__ import annotations

import sys

from cdplake.cli import job_parser, load_from_args
from cdplake.io.session import build_session
from cdplake.privacy.subject import SubjectNotFound, erase_subject, export_subject, find_subject


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, find the person, export or erase, print rows per table."""
    parser = job_parser((__doc__ or "data-subject request").splitlines()[0])
    parser.add_argument("action", choices=["export", "erase"])
    who = parser.add_mutually_exclusive_group(required=True)
    who.add_argument("--customer-id", default=None)
    who.add_argument("--email", default=None)
    who.add_argument("--phone", default=None)
    parser.add_argument("--out", default=None, help="export: folder for the JSON files (local or s3a://)")
    args = parser.parse_args(argv)
    if args.action == "export" and not args.out:
        parser.error("export needs --out")
    env = load_from_args(args)
    spark = build_session(env, app_name=f"cdplake-subject-{args.action}")
    try:
        subject = find_subject(spark, env, customer_id=args.customer_id, email=args.email, phone=args.phone)
    except (SubjectNotFound, ValueError) as exc:
        print(f"not found: {exc}", file=sys.stderr)
        raise SystemExit(1) from None
    if args.action == "export":
        rows = export_subject(spark, env, subject, args.out)
        verb = f"exported to {args.out}"
    else:
        rows = erase_subject(spark, env, subject)
        verb = "erased"
    print(
        f"{subject.request}: {len(subject.customer_ids)} customer id(s), {len(subject.records):,} records {verb}"
    )
    for table, n in rows.items():
        print(f"  {table:<36} {n:>8,} rows")


if __name__ == "__main__":
    main()
