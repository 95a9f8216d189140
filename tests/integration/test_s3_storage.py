"""The S3 path works end to end before the pipeline uses it: boto3, Delta and streaming on s3a://.

Everything runs against the SeaweedFS server of the ``s3_server`` fixture; the lakes live
under per-test prefixes of one bucket.
"""

from __future__ import annotations

import json

import pytest
from pyspark.testing import assertDataFrameEqual
from s3_objects import keys_under, object_key

from cdplake.config import EnvConfig

pytestmark = [pytest.mark.integration, pytest.mark.s3]

STREAM_TIMEOUT_S = 180
EVENT_DDL = "messageId STRING, type STRING, event STRING, userId STRING, revenue DOUBLE"


def _land_jsonl(client, env: EnvConfig, name: str, records: list[dict]) -> None:
    key = object_key(env, f"{env.paths.landing('events')}/2026-11-01/{name}")
    body = "".join(json.dumps(r) + "\n" for r in records).encode("utf-8")
    client.put_object(Bucket=env.s3.bucket, Key=key, Body=body)


def test_boto3_put_list_get_round_trip(s3_server, s3_env):
    client = s3_server.client()
    base = object_key(s3_env, s3_env.paths.landing("crm"))

    client.put_object(Bucket=s3_server.bucket, Key=f"{base}/2026-11-01/a.csv", Body=b"contact_id\nc1\n")
    client.put_object(Bucket=s3_server.bucket, Key=f"{base}/2026-11-02/b.csv", Body=b"contact_id\nc2\n")

    assert keys_under(client, s3_server.bucket, base + "/") == [
        f"{base}/2026-11-01/a.csv",
        f"{base}/2026-11-02/b.csv",
    ]
    body = client.get_object(Bucket=s3_server.bucket, Key=f"{base}/2026-11-02/b.csv")["Body"].read()
    assert body == b"contact_id\nc2\n"


def test_server_enforces_the_configured_identity(s3_server):
    from botocore.exceptions import ClientError

    from cdplake.io.local_s3 import s3_client

    intruder = s3_client(s3_server.endpoint, s3_server.access_key, "not-the-secret")
    with pytest.raises(ClientError) as excinfo:
        intruder.list_objects_v2(Bucket=s3_server.bucket)
    assert excinfo.value.response["Error"]["Code"] in {"SignatureDoesNotMatch", "AccessDenied"}


def test_delta_write_append_read_history_on_s3a(s3_spark, s3_server, s3_env):
    spark = s3_spark
    path = s3_env.paths.table("bronze", "smoke")
    assert path.startswith("s3a://cdplake/")
    schema = "customer_id STRING, orders INT"

    spark.createDataFrame([("c1", 1), ("c2", 3)], schema).write.format("delta").save(path)
    spark.createDataFrame([("c3", 2)], schema).write.format("delta").mode("append").save(path)

    assertDataFrameEqual(
        spark.read.format("delta").load(path),
        spark.createDataFrame([("c1", 1), ("c2", 3), ("c3", 2)], schema),
    )
    history = spark.sql(f"DESCRIBE HISTORY delta.`{path}`").select("version", "operation")
    assertDataFrameEqual(
        history,
        spark.createDataFrame([(0, "WRITE"), (1, "WRITE")], "version LONG, operation STRING"),
    )
    # The commits really are objects in the SeaweedFS bucket, not a local fallback.
    log_keys = keys_under(s3_server.client(), s3_server.bucket, object_key(s3_env, path) + "/_delta_log/")
    commits = [k.rsplit("/", 1)[1] for k in log_keys if k.endswith(".json")]
    assert commits == ["00000000000000000000.json", "00000000000000000001.json"]


def _run_available_now(spark, env: EnvConfig, target: str, checkpoint: str) -> None:
    stream = (
        spark.readStream.format("json")
        .schema(EVENT_DDL)
        .load(f"{env.paths.landing('events')}/*/*.jsonl")
        .writeStream.format("delta")
        .option("checkpointLocation", checkpoint)
        .trigger(availableNow=True)
        .start(target)
    )
    finished = stream.awaitTermination(STREAM_TIMEOUT_S)
    if not finished:
        stream.stop()
    assert finished, f"availableNow query did not finish within {STREAM_TIMEOUT_S}s"
    assert stream.exception() is None


def test_streaming_available_now_from_s3a_landing_to_delta(s3_spark, s3_server, s3_env):
    spark = s3_spark
    client = s3_server.client()
    target = s3_env.paths.table("bronze", "events_smoke")
    checkpoint = s3_env.paths.checkpoint("events_smoke")
    _land_jsonl(
        client,
        s3_env,
        "part-1.jsonl",
        [
            {"messageId": "m1", "type": "track", "event": "Product Viewed", "userId": "u1"},
            {"messageId": "m2", "type": "identify", "userId": "u2"},
        ],
    )
    _land_jsonl(
        client,
        s3_env,
        "part-2.jsonl",
        [{"messageId": "m3", "type": "track", "event": "Order Completed", "userId": "u1", "revenue": 12.5}],
    )
    first_three = [
        ("m1", "track", "Product Viewed", "u1", None),
        ("m2", "identify", None, "u2", None),
        ("m3", "track", "Order Completed", "u1", 12.5),
    ]

    _run_available_now(spark, s3_env, target, checkpoint)
    assertDataFrameEqual(
        spark.read.format("delta").load(target), spark.createDataFrame(first_three, EVENT_DDL)
    )

    # Second run, no new files: the checkpoint on s3a:// remembers both; nothing is appended.
    _run_available_now(spark, s3_env, target, checkpoint)
    assertDataFrameEqual(
        spark.read.format("delta").load(target), spark.createDataFrame(first_three, EVENT_DDL)
    )
    versions = [r.version for r in spark.sql(f"DESCRIBE HISTORY delta.`{target}`").collect()]
    assert versions == [0], "the no-op run must not commit"

    # A third file lands: only its row is added, in one new commit.
    _land_jsonl(client, s3_env, "part-3.jsonl", [{"messageId": "m4", "type": "page", "userId": "u3"}])
    _run_available_now(spark, s3_env, target, checkpoint)
    assertDataFrameEqual(
        spark.read.format("delta").load(target),
        spark.createDataFrame([*first_three, ("m4", "page", None, "u3", None)], EVENT_DDL),
    )
    versions = sorted(r.version for r in spark.sql(f"DESCRIBE HISTORY delta.`{target}`").collect())
    assert versions == [0, 1]
    assert keys_under(client, s3_server.bucket, object_key(s3_env, checkpoint) + "/offsets/") != []
