"""Jobs run under ``spark-submit`` on a real standalone cluster, the library shipped as --py-files.

The ``spark_cluster`` fixture starts a master and one worker (2 cores) on 127.0.0.1. The
driver of each submission is a separate process; the tests read what it wrote back through
the run's shared session. The main job runs there with its lake on the SeaweedFS S3 server
(``s3_server``): the one full-pipeline run on object storage in the suite.
"""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest
from pyspark.sql import functions as F
from pyspark.testing import assertDataFrameEqual
from s3_objects import keys_under, object_key

from cdplake.io.local_cluster import build_lib_zip, submit
from cdplake.io.session import local_jars

pytestmark = [pytest.mark.integration, pytest.mark.cluster]

JSON_SOURCES = ("events", "email", "orders")

REPO = Path(__file__).resolve().parents[2]
SMOKE_JOB = textwrap.dedent(
    """
    # Written by test_cluster_submit: a job that goes through the one session builder.
    import sys

    from cdplake.config import load_env
    from cdplake.io.session import build_session


    def cdplake_location(_):
        import cdplake  # imported on the executor, from the --py-files zip

        return cdplake.__file__


    cfg = load_env("local", conf_dir=sys.argv[1])
    spark = build_session(cfg, app_name="cdplake-cluster-smoke")
    rows = spark.sparkContext.parallelize(range(4), 2).map(lambda n: (n, n * n, cdplake_location(n)))
    df = spark.createDataFrame(rows, "n LONG, square LONG, cdplake_file STRING")
    df = df.selectExpr("*", f"'{spark.sparkContext.master}' AS master")
    df.write.format("delta").save(cfg.paths.table("gold", "cluster_smoke"))
    spark.stop()
    """
)


def _submit_env(lake: Path | str) -> dict[str, str]:
    # master: null lets spark-submit's --master win; conf/env/local.yaml says local[2].
    # Two shuffle partitions: one task per worker core (conf/env/local.yaml has 4).
    return {
        "CDPLAKE__STORAGE__ROOT": str(lake),
        "CDPLAKE__SPARK__MASTER": "null",
        "CDPLAKE__SPARK__SHUFFLE_PARTITIONS": "2",
    }


def _core_jars(spark_env) -> list[str]:
    return local_jars(spark_env.spark.jars_dir, ("core",))


def _landed_lines(client, bucket: str, prefix: str) -> int:
    """Non-blank lines in every landed file under ``prefix`` (one JSON record each)."""
    total = 0
    for key in keys_under(client, bucket, prefix):
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        total += sum(1 for line in body.splitlines() if line.strip())
    return total


def _completed_app_names(cluster) -> list[str]:
    return sorted(app["name"] for app in cluster.state().get("completedapps", []))


def test_submitted_job_runs_on_the_cluster_with_the_shipped_library(
    spark, local_env, spark_cluster, tmp_path
):
    script = tmp_path / "cluster_smoke.py"
    script.write_text(SMOKE_JOB, encoding="utf-8")
    lake = tmp_path / "lake"
    lib_zip = build_lib_zip(tmp_path)

    submit(
        spark_cluster.master_url,
        script,
        [str(REPO / "conf")],
        py_files=[lib_zip],
        jars=_core_jars(local_env),
        env=_submit_env(lake),
        log_path=tmp_path / "submit.log",
    )

    table = spark.read.format("delta").load(str(lake / "delta" / "gold" / "cluster_smoke"))
    expected = spark.createDataFrame(
        [(n, n * n, spark_cluster.master_url) for n in range(4)], "n LONG, square LONG, master STRING"
    )
    assertDataFrameEqual(table.drop("cdplake_file"), expected)
    # Executors imported cdplake from the shipped zip, not from the driver's checkout.
    locations = [r.cdplake_file for r in table.select("cdplake_file").collect()]
    assert all("cdplake.zip/cdplake/__init__.py" in loc for loc in locations), locations
    assert "cdplake-cluster-smoke" in _completed_app_names(spark_cluster)


@pytest.mark.s3
def test_run_pipeline_job_on_the_cluster_with_the_lake_on_s3(
    s3_spark, s3_server, s3_env, local_env, spark_cluster, tmp_path
):
    """The production shape: the main job submitted to a cluster, every table on object storage.

    Demo files are landed in the bucket with boto3 by the job's driver; bronze to gold are
    Delta tables at ``s3a://`` paths written by the cluster's executor. The S3A jars are on the
    nodes' classpath (as a cluster library would be); the Delta jars go with ``--jars``.
    """
    spark = s3_spark
    client = s3_server.client()
    lib_zip = build_lib_zip(tmp_path)
    s3_classpath = ":".join(local_jars(local_env.spark.jars_dir, ("s3",)))

    result = submit(
        spark_cluster.master_url,
        REPO / "jobs" / "run_pipeline.py",
        ["--env", "s3", "--conf-dir", str(REPO / "conf"), "--generate", "--customers", "30"],
        py_files=[lib_zip],
        jars=_core_jars(local_env),
        conf={"spark.driver.extraClassPath": s3_classpath, "spark.executor.extraClassPath": s3_classpath},
        env={
            **_submit_env(s3_env.storage.root),
            "CDPLAKE__S3__ENDPOINT": s3_env.s3.endpoint,
            "CDPLAKE__S3__BUCKET": s3_env.s3.bucket,
            "CDPLAKE__SPARK__JARS_DIR": str(REPO / ".jars"),
        },
        log_path=tmp_path / "submit.log",
    )
    assert "customers resolved:" in result.stdout
    assert "cdplake-run-pipeline" in _completed_app_names(spark_cluster)

    # Bronze keeps every line landed in the bucket, duplicates and bad records included.
    for source in JSON_SOURCES:
        landed = _landed_lines(
            client, s3_server.bucket, object_key(s3_env, s3_env.paths.landing(source)) + "/"
        )
        assert landed > 0, f"nothing landed for {source}"
        bronze = spark.read.format("delta").load(s3_env.paths.table("bronze", source))
        assert bronze.count() == landed, source

    profile = spark.read.format("delta").load(s3_env.paths.table("gold", "customer_profile"))
    record_customer = spark.read.format("delta").load(s3_env.paths.table("identity", "record_customer"))
    assert profile.count() > 0
    assert profile.groupBy("customer_id").count().where("count > 1").collect() == []
    assert profile.where(F.col("customer_id").isNull()).count() == 0
    # One profile per customer the identity layer resolved a record to, and no other.
    assertDataFrameEqual(profile.select("customer_id"), record_customer.select("customer_id").distinct())

    membership = spark.read.format("delta").load(s3_env.paths.table("gold", "segment_membership"))
    assert {"segment_id", "customer_id", "entered_at", "is_member"} <= set(membership.columns)
    assert membership.join(profile, "customer_id", "left_anti").collect() == []  # members are profiled

    # The tables really are objects in the SeaweedFS bucket.
    for layer, table in [("bronze", s) for s in JSON_SOURCES] + [
        ("gold", "customer_profile"),
        ("gold", "segment_membership"),
    ]:
        log = keys_under(
            client, s3_server.bucket, object_key(s3_env, s3_env.paths.table(layer, table)) + "/_delta_log/"
        )
        assert any(k.endswith("00000000000000000000.json") for k in log), (
            f"{layer}/{table} has no Delta log on S3"
        )
