"""Reading the test S3 bucket directly with boto3, to check what the lake wrote there."""

from __future__ import annotations

from cdplake.config import EnvConfig


def object_key(env: EnvConfig, s3a_path: str) -> str:
    """The object key of an ``s3a://bucket/key`` path of this lake."""
    bucket_root = f"s3a://{env.s3.bucket}/"
    assert s3a_path.startswith(bucket_root), s3a_path
    return s3a_path[len(bucket_root) :]


def keys_under(client, bucket: str, prefix: str) -> list[str]:
    """Every object key under ``prefix``, sorted."""
    keys: list[str] = []
    for page in client.get_paginator("list_objects_v2").paginate(Bucket=bucket, Prefix=prefix):
        keys.extend(obj["Key"] for obj in page.get("Contents", []))
    return sorted(keys)
