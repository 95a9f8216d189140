"""The whole pipeline on S3: demo data landed with boto3, every Delta table on s3a://."""

from __future__ import annotations

import pytest
from pyspark.sql import functions as F

from cdplake.config import EnvConfig
from cdplake.pipeline import run_pipeline

pytestmark = [pytest.mark.integration, pytest.mark.s3]

JSON_SOURCES = ("events", "email", "orders")


def _key_prefix(env: EnvConfig, s3a_path: str) -> str:
    bucket_root = f"s3a://{env.s3.bucket}/"
    assert s3a_path.startswith(bucket_root), s3a_path
    return s3a_path[len(bucket_root) :].rstrip("/") + "/"


def _objects(client, bucket: str, prefix: str) -> list[str]:
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return keys


def _landed_lines(client, bucket: str, prefix: str) -> int:
    """Non-blank lines in every landed file under ``prefix`` (one JSON record each)."""
    total = 0
    for key in _objects(client, bucket, prefix):
        body = client.get_object(Bucket=bucket, Key=key)["Body"].read().decode("utf-8")
        total += sum(1 for line in body.splitlines() if line.strip())
    return total


def test_full_pipeline_on_s3(s3_spark, s3_server, s3_env):
    spark = s3_spark
    client = s3_server.client()
    assert s3_env.storage.kind == "s3" and s3_env.demo.customers == 40

    summary = run_pipeline(spark, s3_env, generate=True)

    # Bronze keeps every landed line, duplicates and bad records included.
    for source in JSON_SOURCES:
        landed = _landed_lines(client, s3_server.bucket, _key_prefix(s3_env, s3_env.paths.landing(source)))
        assert landed > 0, f"nothing landed for {source}"
        bronze = spark.read.format("delta").load(s3_env.paths.table("bronze", source))
        assert bronze.count() == landed, source
        assert summary.table_rows[("bronze", source)] == landed, source

    profile = spark.read.format("delta").load(s3_env.paths.table("gold", "customer_profile"))
    assert profile.count() > 0
    assert profile.groupBy("customer_id").count().where("count > 1").collect() == []
    assert profile.where(F.col("customer_id").isNull()).count() == 0

    membership = spark.read.format("delta").load(s3_env.paths.table("gold", "segment_membership"))
    assert {"segment_id", "customer_id", "entered_at", "is_member"} <= set(membership.columns)
    # Members are profiled customers.
    assert membership.join(profile, "customer_id", "left_anti").collect() == []

    # The tables really are objects in the SeaweedFS bucket.
    for layer, table in [("bronze", s) for s in JSON_SOURCES] + [
        ("gold", "customer_profile"),
        ("gold", "segment_membership"),
    ]:
        log = _objects(
            client, s3_server.bucket, _key_prefix(s3_env, s3_env.paths.table(layer, table)) + "_delta_log/"
        )
        assert any(k.endswith("00000000000000000000.json") for k in log), (
            f"{layer}/{table} has no Delta log on S3"
        )
