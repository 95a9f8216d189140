"""Identity + silver -> gold: customer profiles, consent-gated segments, membership history."""

from __future__ import annotations

import datetime as dt

from cdplake.cli import job_parser, load_from_args, new_run_id, parse_as_of
from cdplake.io.session import build_session
from cdplake.segments import build_gold


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, build the gold layer once and print segment sizes."""
    parser = job_parser(__doc__ or "build gold")
    parser.add_argument("--as-of", default=None, help="evaluation time, ISO date-time (default: now, UTC)")
    args = parser.parse_args(argv)
    env = load_from_args(args)
    as_of = parse_as_of(args.as_of) or dt.datetime.now(dt.timezone.utc).replace(microsecond=0)
    spark = build_session(env, app_name="cdplake-build-gold")
    run_id = args.run_id or new_run_id()
    result = build_gold(spark, env, run_id, as_of)
    print(f"{run_id} as of {as_of:%Y-%m-%d %H:%M} UTC: {result.profiles:,} profiles")
    for segment, size in result.segment_sizes.items():
        print(
            f"  {segment:<24} {size:>8,} members ({result.excluded.get(segment, 0):,} left out for lack of consent)"
        )


if __name__ == "__main__":
    main()
