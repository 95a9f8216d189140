"""Fixtures for the integration tier: the SeaweedFS S3 server and a Spark standalone cluster.

The S3 fixtures reuse the run's one SparkSession (``spark`` from ``tests/conftest.py``, which
puts the S3A jars on the classpath when ``make jars-s3`` has run) and point its Hadoop
configuration at the test server. The cluster fixture starts a real master and worker.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from cdplake.config import EnvConfig, load_env
from cdplake.io.local_s3 import ACCESS_KEY_ENV, SECRET_KEY_ENV, S3Server, free_port, start_server

REPO = Path(__file__).resolve().parents[2]
S3_BUCKET = "cdplake"
# The Makefile's development credentials; real ones never reach the tests.
DEV_CREDENTIALS = {ACCESS_KEY_ENV: "cdplake-dev", SECRET_KEY_ENV: "cdplake-dev-secret"}


def s3_jars_present(env: EnvConfig) -> bool:
    """True when ``make jars-s3`` has put hadoop-aws and the AWS SDK bundle in ``.jars/s3``."""
    return any((Path(env.spark.jars_dir) / "s3").glob("hadoop-aws-*.jar"))


def s3_env_for(server: S3Server, prefix: str, **overrides: str) -> EnvConfig:
    """The ``s3`` environment pointed at ``server``, with its lake under ``s3a://<bucket>/<prefix>``.

    Args:
        server: the running test server.
        prefix: folder inside the bucket that holds this lake (keeps tests apart).
        **overrides: further ``CDPLAKE__...`` variables.
    """
    environ = {
        **os.environ,
        "CDPLAKE__S3__ENDPOINT": server.endpoint,
        "CDPLAKE__S3__BUCKET": server.bucket,
        # LakePaths joins with "/" after stripping a trailing one: s3a://cdplake/<prefix>/delta/...
        "CDPLAKE__STORAGE__ROOT": f"s3a://{server.bucket}/{prefix}",
        **overrides,
    }
    return load_env("s3", conf_dir=REPO / "conf", environ=environ)


def hadoop_s3a_settings(env: EnvConfig) -> dict[str, str]:
    """The ``fs.s3a.*`` settings the session builder would give ``env``, without ``spark.hadoop.``.

    Reuses :func:`cdplake.io.session.spark_conf` so the tests exercise the builder's keys.
    """
    from cdplake.io.session import spark_conf

    prefix = "spark.hadoop."
    return {k[len(prefix) :]: v for k, v in spark_conf(env).items() if k.startswith(prefix)}


@pytest.fixture(scope="session")
def s3_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[S3Server]:
    """A SeaweedFS S3 server on a free 127.0.0.1 port for the whole run, stopped at the end."""
    for name, value in DEV_CREDENTIALS.items():
        os.environ.setdefault(name, value)
    folder = tmp_path_factory.mktemp("seaweedfs")
    server = start_server(
        folder,
        free_port(),
        os.environ[ACCESS_KEY_ENV],
        os.environ[SECRET_KEY_ENV],
        S3_BUCKET,
    )
    yield server
    server.stop(timeout=0)  # throwaway data: no need for a graceful shutdown


@pytest.fixture(scope="session")
def s3_base_env(s3_server: S3Server) -> EnvConfig:
    """The ``s3`` environment for the test server (lake root ``s3a://cdplake/tests``)."""
    return s3_env_for(s3_server, "tests")


@pytest.fixture(scope="session")
def s3_spark(spark, s3_base_env: EnvConfig):
    """The shared session, its Hadoop configuration pointed at the test S3 server.

    Skips when the S3A jars are absent (``make jars-s3``; ``make test`` always fetches them).
    """
    if not s3_jars_present(s3_base_env):
        pytest.skip(f"S3A jars missing in {Path(s3_base_env.spark.jars_dir) / 's3'}: run `make jars-s3`")
    hadoop_conf = spark.sparkContext._jsc.hadoopConfiguration()
    for key, value in hadoop_s3a_settings(s3_base_env).items():
        hadoop_conf.set(key, value)
    return spark


@pytest.fixture
def s3_env(s3_server: S3Server, request: pytest.FixtureRequest) -> EnvConfig:
    """A fresh lake for one test under ``s3a://cdplake/<test name>-<random>`` (40 demo customers)."""
    safe = "".join(c if c.isalnum() else "-" for c in request.node.name)[:40].strip("-")
    return s3_env_for(s3_server, f"{safe}-{uuid.uuid4().hex[:8]}", CDPLAKE__DEMO__CUSTOMERS="40")


@pytest.fixture(scope="module")
def spark_cluster(tmp_path_factory: pytest.TempPathFactory):
    """A Spark standalone master + one worker (2 cores, 1 GB) on free 127.0.0.1 ports."""
    from cdplake.io.local_cluster import start_cluster

    cluster = start_cluster(tmp_path_factory.mktemp("spark-cluster"), cores=2, memory="1g")
    yield cluster
    cluster.stop()


@dataclass(frozen=True)
class TwoWaveStream:
    """A lake the stream built in two availableNow cycles, one per landed wave.

    Built by running the consumers notebook (``notebooks/02_consumers.py``) top to bottom:
    it lands the waves, runs one cycle after each, then the outbox and the segment export.
    ``notebook`` is its global namespace after the last cell. ``gold_versions`` pins every
    gold table as cycle 2 left it: later tests may write to the lake (a full ``build_gold``,
    a third cycle), so readers of the reference state use them.
    """

    env: EnvConfig
    files: dict[str, bytes]
    results: list
    gold_versions: dict[str, int]
    notebook: dict

    def gold(self, spark, name: str):
        """A gold table as cycle 2 left it."""
        return (
            spark.read.format("delta")
            .option("versionAsOf", self.gold_versions[name])
            .load(self.env.paths.table("gold", name))
        )


@pytest.fixture(scope="session")
def two_wave_stream(spark, tmp_path_factory: pytest.TempPathFactory) -> TwoWaveStream:
    """The consumers notebook over :data:`lake_conf.STREAM_DEMO`, with the stream tests' conf.

    Shared by the notebook's own test, the stream-pipeline tests and, as the uninterrupted
    reference, by the crash test: each cycle costs about a minute on 2 cores whatever the
    data size, so the two cycles run once for all of them.
    """
    import runpy

    from lake_conf import STREAM_AS_OF, STREAM_DEMO, STREAM_GOLD, WAVE_1_LAST_DAY, stream_test_conf

    from cdplake.io.delta import table_version
    from cdplake.landing import generate

    root = tmp_path_factory.mktemp("two-wave-stream") / "lake"
    # The GX suites are tested elsewhere; here they would only add time to every cycle.
    conf = stream_test_conf(root.parent)
    settings = {
        "CDPLAKE_CONF_DIR": str(conf),
        "CDPLAKE__SPARK__JARS_DIR": str(REPO / ".jars"),
        "CDPLAKE__DEMO__SEED": str(STREAM_DEMO.seed),
        "CDPLAKE_WIDGET_LAKE_ROOT": str(root),
        "CDPLAKE_WIDGET_CUSTOMERS": str(STREAM_DEMO.customers),
        "CDPLAKE_WIDGET_DAYS": str(STREAM_DEMO.days),
        "CDPLAKE_WIDGET_AS_OF": STREAM_AS_OF.strftime("%Y-%m-%dT%H:%M:%S"),
    }
    with pytest.MonkeyPatch.context() as mp:
        for name, value in settings.items():
            mp.setenv(name, value)
        # The notebook's build_session joins the test run's session (getOrCreate).
        namespace = runpy.run_path(str(REPO / "notebooks" / "02_consumers.py"), run_name="__main__")
        env = load_env("local", conf_dir=conf, environ={**os.environ, "CDPLAKE__STORAGE__ROOT": str(root)})
    files = generate(STREAM_DEMO).files
    # The notebook landed exactly the files and waves the crash test lands (lake_conf.land_wave).
    assert namespace["files"] == files
    assert namespace["cut"] == WAVE_1_LAST_DAY
    assert env.storage.root == str(root)
    versions = {name: table_version(spark, env.paths.table("gold", name)) for name in STREAM_GOLD}
    return TwoWaveStream(env, files, list(namespace["cycles"]), versions, namespace)
