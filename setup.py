"""cdplake: a PySpark + Delta Lake customer data platform, as one pure-Python wheel."""

from pathlib import Path

from setuptools import find_packages, setup

HERE = Path(__file__).parent


def _pins(name: str) -> list[str]:
    lines = (HERE / name).read_text().splitlines()
    return [ln.strip() for ln in lines if ln.strip() and not ln.startswith(("#", "-r"))]


setup(
    name="cdplake",
    version="0.1.0",
    description="Raw customer data to personalization-ready profiles and segments on Spark + Delta",
    long_description=(HERE / "README.md").read_text(encoding="utf-8"),
    long_description_content_type="text/markdown",
    license="Apache-2.0",
    python_requires=">=3.10",
    # jobs/ ships as `cdplake_jobs` so console scripts and Databricks wheel tasks can call
    # the same main() that `spark-submit jobs/<job>.py` runs.
    package_dir={"": "lib", "cdplake_jobs": "jobs"},
    packages=find_packages("lib") + ["cdplake_jobs"],
    install_requires=_pins("requirements.txt"),
    # Clusters provide Spark and Delta; `pip install cdplake[spark]` brings them locally.
    extras_require={"spark": _pins("requirements-spark.txt")},
    entry_points={
        "console_scripts": [
            "cdplake-run=cdplake_jobs.run_pipeline:main",
            "cdplake-generate-demo-data=cdplake_jobs.generate_demo_data:main",
            "cdplake-ingest-bronze=cdplake_jobs.ingest_bronze:main",
            "cdplake-build-silver=cdplake_jobs.build_silver:main",
            "cdplake-resolve-identity=cdplake_jobs.resolve_identity:main",
            "cdplake-build-gold=cdplake_jobs.build_gold:main",
            "cdplake-train-linkage-model=cdplake_jobs.train_linkage_model:main",
            "cdplake-score-linkage=cdplake_jobs.score_linkage:main",
            "cdplake-link-records=cdplake_jobs.link_records:main",
            "cdplake-stream=cdplake_jobs.stream_pipeline:main",
            "cdplake-export-segments=cdplake_jobs.export_segments:main",
            "cdplake-membership-outbox=cdplake_jobs.membership_outbox:main",
            "cdplake-review-identity=cdplake_jobs.review_identity:main",
            "cdplake-subject-request=cdplake_jobs.subject_request:main",
        ]
    },
)
