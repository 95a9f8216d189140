"""Link any table of person records (CSV, Parquet or Delta): scored pairs and clusters.

python jobs/link_records.py --input people.csv --id-column id --settings my_linkage.yaml --output out/
"""

from __future__ import annotations

from cdplake.cli import job_parser, load_from_args, new_run_id
from cdplake.config import load_linkage_config
from cdplake.identity import link_records
from cdplake.identity.record_linking import INPUT_FORMATS, OUTPUT_FORMATS
from cdplake.io.session import build_session


def main(argv: list[str] | None = None) -> None:
    """Parse arguments, link once, print the counts and where the results are."""
    parser = job_parser((__doc__ or "link records").splitlines()[0])
    parser.add_argument(
        "--input", required=True, help="CSV file/folder (with header), Parquet or Delta table"
    )
    parser.add_argument("--id-column", required=True, help="the input's unique record id column")
    parser.add_argument(
        "--settings", required=True, help="linkage settings YAML (format of conf/linkage.yaml)"
    )
    parser.add_argument("--output", required=True, help="folder for pairs/, clusters/ and model.json")
    parser.add_argument(
        "--format", choices=INPUT_FORMATS, default=None, help="input format (default: guessed)"
    )
    parser.add_argument("--output-format", choices=OUTPUT_FORMATS, default="delta")
    parser.add_argument("--model", default=None, help="a saved model JSON to apply instead of training")
    parser.add_argument(
        "--incremental",
        action="store_true",
        help="score and re-cluster only the records new or changed since the last run into --output",
    )
    args = parser.parse_args(argv)
    env = load_from_args(args)
    cfg = load_linkage_config(args.settings)
    spark = build_session(env, app_name="cdplake-link-records")
    res = link_records(
        spark,
        args.input,
        cfg,
        args.output,
        id_column=args.id_column,
        input_fmt=args.format,
        output_fmt=args.output_format,
        model_path=args.model,
        run_id=args.run_id or new_run_id(),
        incremental=args.incremental,
        checkpoint_dir=env.paths.checkpoint("splink"),
    )
    if res.mode == "incremental":
        print(
            f"incremental: {res.batch_records:,} new or changed records, {res.scope_records:,} re-clustered"
        )
    elif res.reason:
        print(f"ran in full: {res.reason}")
    print(
        f"{res.records:,} records, {res.candidate_pairs:,} candidate pairs scored, "
        f"{res.pairs_written:,} pairs written ({res.links:,} links), {res.clusters:,} clusters, "
        f"model {res.model_version} -> {res.output}"
    )


if __name__ == "__main__":
    main()
