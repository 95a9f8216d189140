"""Train the probabilistic linkage model on silver person records and save it with a version.

python jobs/train_linkage_model.py --env local [--model-version linkage_v2] [--settings conf/linkage.yaml]
"""

from __future__ import annotations

from pathlib import Path

from cdplake.cli import job_parser, load_from_args
from cdplake.config import load_linkage_config
from cdplake.identity import train_linkage_model
from cdplake.io.session import build_session


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, train once, print where the model went."""
    parser = job_parser((__doc__ or "train the linkage model").splitlines()[0])
    parser.add_argument(
        "--model-version", default=None, help="version to save under (default: linkage_<utc time>)"
    )
    parser.add_argument(
        "--settings", default=None, help="linkage settings YAML (default: <conf-dir>/linkage.yaml)"
    )
    args = parser.parse_args(argv)
    env = load_from_args(args)
    cfg = load_linkage_config(args.settings or Path(env.conf_dir) / "linkage.yaml")
    spark = build_session(env, app_name="cdplake-train-linkage-model")
    model, path = train_linkage_model(spark, env, cfg, args.model_version)
    print(f"trained linkage model {model.version} -> {path}")


if __name__ == "__main__":
    main()
