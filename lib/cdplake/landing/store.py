"""Where raw files land: a local folder or an S3 bucket, behind one small interface.

Both stores lay files out as ``<root>/<relpath>`` so Spark reads ``/lake/landing/events/...``
and ``s3a://bucket/landing/events/...`` the same way.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cdplake.config import ConfigError, EnvConfig

if TYPE_CHECKING:
    from cdplake.landing.generator import GeneratedData

AREAS = ("landing", "ground_truth")
_S3_SCHEMES = ("s3a://", "s3://")


class LandingStore(Protocol):
    """A flat namespace of files under one root."""

    def put(self, relpath: str, data: bytes) -> None:
        """Write (or overwrite) one file."""
        ...

    def list(self) -> list[str]:
        """Every file's path relative to the root, sorted."""
        ...


def _clean(relpath: str) -> str:
    parts = [p for p in relpath.replace("\\", "/").split("/") if p not in ("", ".")]
    if not parts or ".." in parts:
        raise ValueError(f"not a relative file path: {relpath!r}")
    return "/".join(parts)


class LocalStore:
    """Files under a local folder.

    Args:
        root: the folder; created on first write.
    """

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def __repr__(self) -> str:
        return f"LocalStore({str(self.root)!r})"

    def put(self, relpath: str, data: bytes) -> None:
        """Write atomically: a streaming file source must never see half a file."""
        target = self.root / _clean(relpath)
        target.parent.mkdir(parents=True, exist_ok=True)
        # Spark's file sources skip names starting with "." so the temp file stays invisible.
        tmp = target.with_name(f".{target.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)

    def list(self) -> list[str]:
        if not self.root.is_dir():
            return []
        return sorted(
            p.relative_to(self.root).as_posix()
            for p in self.root.rglob("*")
            if p.is_file() and not p.name.startswith(".")
        )


class S3Store:
    """Objects under ``s3://bucket/prefix/`` on AWS or any S3-compatible server.

    Args:
        endpoint: e.g. ``http://127.0.0.1:8333``.
        bucket: created on first write when it does not exist.
        prefix: key prefix without a trailing slash (``landing``); may be empty.
        access_key: access key id.
        secret_key: secret access key.
        region: signing region.
        path_style: path-style addressing (``endpoint/bucket/key``), which local servers need.
    """

    def __init__(
        self,
        endpoint: str,
        bucket: str,
        prefix: str,
        access_key: str,
        secret_key: str,
        region: str = "us-east-1",
        path_style: bool = True,
    ) -> None:
        import boto3  # imported here so local-only runs never pay for it
        from botocore.config import Config

        self.bucket = bucket
        self.prefix = prefix.strip("/")
        self.region = region
        self._client: Any = boto3.client(
            "s3",
            endpoint_url=endpoint,
            aws_access_key_id=access_key,
            aws_secret_access_key=secret_key,
            region_name=region,
            config=Config(s3={"addressing_style": "path" if path_style else "virtual"}),
        )
        self._bucket_ready = False

    def __repr__(self) -> str:
        return f"S3Store('s3://{self.bucket}/{self.prefix}')"

    def _key(self, relpath: str) -> str:
        rel = _clean(relpath)
        return f"{self.prefix}/{rel}" if self.prefix else rel

    def ensure_bucket(self) -> None:
        """Create the bucket unless it exists (idempotent)."""
        from botocore.exceptions import ClientError

        if self._bucket_ready:
            return
        try:
            self._client.head_bucket(Bucket=self.bucket)
        except ClientError as exc:
            if exc.response.get("Error", {}).get("Code") not in ("404", "NoSuchBucket", "NotFound"):
                raise
            kwargs: dict[str, Any] = {"Bucket": self.bucket}
            if self.region != "us-east-1":  # AWS rejects an explicit us-east-1 constraint
                kwargs["CreateBucketConfiguration"] = {"LocationConstraint": self.region}
            try:
                self._client.create_bucket(**kwargs)
            except ClientError as create_exc:
                code = create_exc.response.get("Error", {}).get("Code")
                if code not in ("BucketAlreadyOwnedByYou", "BucketAlreadyExists"):
                    raise
        self._bucket_ready = True

    def put(self, relpath: str, data: bytes) -> None:
        self.ensure_bucket()
        self._client.put_object(Bucket=self.bucket, Key=self._key(relpath), Body=data)

    def list(self) -> list[str]:
        prefix = f"{self.prefix}/" if self.prefix else ""
        keys: list[str] = []
        paginator = self._client.get_paginator("list_objects_v2")
        try:
            for page in paginator.paginate(Bucket=self.bucket, Prefix=prefix):
                keys.extend(obj["Key"][len(prefix) :] for obj in page.get("Contents", []))
        except self._client.exceptions.NoSuchBucket:
            return []
        return sorted(k for k in keys if k and not k.endswith("/"))


def split_s3_uri(uri: str) -> tuple[str, str]:
    """``s3a://bucket/a/b`` -> (``bucket``, ``a/b``)."""
    for scheme in _S3_SCHEMES:
        if uri.startswith(scheme):
            bucket, _, prefix = uri[len(scheme) :].partition("/")
            if not bucket:
                raise ConfigError(f"no bucket in {uri!r}")
            return bucket, prefix.strip("/")
    raise ConfigError(f"not an s3a:// URI: {uri!r}")


def store_for(env: EnvConfig, area: str) -> LandingStore:
    """The store of one lake area of an environment.

    Args:
        env: the loaded environment.
        area: ``landing`` or ``ground_truth``.

    Raises:
        ConfigError: unknown area, or an ``s3a://`` root without an ``s3:`` section or
            credentials.
    """
    if area not in AREAS:
        raise ConfigError(f"area must be one of {AREAS}, got {area!r}")
    root = env.paths.landing() if area == "landing" else env.paths.ground_truth()
    if not root.startswith(_S3_SCHEMES):
        return LocalStore(root)
    if env.s3 is None:
        raise ConfigError(f"{root} is on S3 but the environment {env.name!r} has no s3: section")
    bucket, prefix = split_s3_uri(root)
    access_key, secret_key = env.s3.credentials()
    return S3Store(
        endpoint=env.s3.endpoint,
        bucket=bucket,
        prefix=prefix,
        access_key=access_key,
        secret_key=secret_key,
        region=env.s3.region,
        path_style=env.s3.path_style,
    )


def write_generated(landing: LandingStore, ground_truth: LandingStore, data: GeneratedData) -> dict[str, int]:
    """Write generated files and their answer key to two stores; returns files per source."""
    for relpath in sorted(data.files):
        landing.put(relpath, data.files[relpath])
    ground_truth.put("records.csv", data.records_csv())
    ground_truth.put("persons.csv", data.persons_csv())
    return data.files_per_source()


def write_landing(env: EnvConfig, data: GeneratedData) -> dict[str, int]:
    """Write the landing files and ``ground_truth/{records,persons}.csv`` of an environment.

    Args:
        env: where the lake lives (local folder or ``s3a://`` root).
        data: the output of :func:`cdplake.landing.generate`.

    Returns:
        Number of landing files written per source.
    """
    return write_generated(store_for(env, "landing"), store_for(env, "ground_truth"), data)
