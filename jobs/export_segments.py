"""Export every segment's current, consented members as files an email platform imports.

cdplake-export-segments --out /exports/2026-11-24 --format csv json
"""

from __future__ import annotations

from collections.abc import Sequence

from cdplake.cli import job_parser, load_from_args
from cdplake.consumers import export_segments
from cdplake.io.session import build_session


def main(argv: Sequence[str] | None = None) -> None:
    parser = job_parser(__doc__.splitlines()[0])
    parser.add_argument("--out", default=None, help="target folder (default: <lake>/exports)")
    parser.add_argument("--format", nargs="+", default=["csv", "json"], choices=["csv", "json"])
    parser.add_argument("--segment", nargs="*", default=None, help="segment ids (default: every defined one)")
    args = parser.parse_args(argv)
    env = load_from_args(args)
    spark = build_session(env, app_name="cdplake-export-segments")
    out = args.out or env.paths.root.rstrip("/") + "/exports"
    for item in export_segments(spark, env, out, formats=args.format, segment_ids=args.segment):
        print(
            f"{item.segment_id:<24} {item.rows:>8,} rows ({item.withheld:,} withheld)  {', '.join(item.files)}"
        )


if __name__ == "__main__":
    main()
