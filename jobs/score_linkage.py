"""Score silver person records with a saved linkage model into identity/probabilistic_edges.

python jobs/score_linkage.py --env local [--model-version linkage_20261124T140000Z]
"""

from __future__ import annotations

from pathlib import Path

from cdplake.cli import job_parser, load_from_args, new_run_id
from cdplake.config import load_linkage_config
from cdplake.identity import score_probabilistic_edges
from cdplake.io.session import build_session


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, score once (after the cost guard), print the counts."""
    parser = job_parser((__doc__ or "score linkage").splitlines()[0])
    parser.add_argument(
        "--model-version", default=None, help="saved model version (default: the latest trained)"
    )
    parser.add_argument(
        "--settings", default=None, help="linkage settings YAML (default: <conf-dir>/linkage.yaml)"
    )
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="score only new or changed person records against the rest and MERGE their pairs",
    )
    args = parser.parse_args(argv)
    env = load_from_args(args)
    cfg = load_linkage_config(args.settings or Path(env.conf_dir) / "linkage.yaml")
    spark = build_session(env, app_name="cdplake-score-linkage")
    run_id = args.run_id or new_run_id()
    res = score_probabilistic_edges(spark, env, cfg, run_id, args.model_version, incremental=args.incremental)
    print(
        f"{run_id} ({res.mode}): model {res.model_version} scored {res.candidate_pairs:,} candidate pairs of "
        f"{res.records:,} records; {res.edges_written:,} edges written, {res.links:,} at or above "
        f"p={cfg.threshold_match_probability}"
    )


if __name__ == "__main__":
    main()
