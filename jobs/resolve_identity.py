"""Silver -> identity tables: identifiers, blocked identifiers, customer map, record -> customer."""

from __future__ import annotations

from cdplake.cli import job_parser, load_from_args, new_run_id
from cdplake.identity import resolve_identities
from cdplake.io.session import build_session


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, resolve identities once and print the counts."""
    parser = job_parser(__doc__ or "resolve identities")
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="resolve only the records changed since the last run and what they link to (MERGE)",
    )
    args = parser.parse_args(argv)
    env = load_from_args(args)
    spark = build_session(env, app_name="cdplake-resolve-identity")
    run_id = args.run_id or new_run_id()
    result = resolve_identities(spark, env, run_id, incremental=args.incremental)
    print(
        f"{run_id} ({result.mode}, {result.mode_reason}; {result.scope_records:,} records resolved): "
        f"{result.customers:,} customers from {result.records:,} records, "
        f"{result.identifiers:,} identifiers, {result.blocked:,} blocked {result.blocked_by_reason}, "
        f"{result.unresolved_records:,} records left without a customer"
    )


if __name__ == "__main__":
    main()
