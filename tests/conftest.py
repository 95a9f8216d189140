"""One SparkSession for the whole test run, Delta enabled, every path under a temp folder."""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from cdplake.config import EnvConfig, load_env

REPO = Path(__file__).resolve().parents[1]

# Python workers (pandas UDFs) must run this interpreter, the one with pandas and
# phonenumbers, also when pytest is started without the Makefile's PYSPARK_PYTHON export.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)


@pytest.fixture(scope="session")
def local_env(tmp_path_factory: pytest.TempPathFactory) -> EnvConfig:
    """The `local` environment with its lake under a session temp folder."""
    root = tmp_path_factory.mktemp("lake")
    return load_env(
        "local",
        conf_dir=REPO / "conf",
        environ={**os.environ, "CDPLAKE__STORAGE__ROOT": str(root), "CDPLAKE__DEMO__CUSTOMERS": "60"},
    )


@pytest.fixture(scope="session")
def spark(local_env: EnvConfig):
    """The one session of the run: local[2], 2 shuffle partitions, UI off, UTC, Delta on."""
    from pyspark.sql import SparkSession

    from cdplake.io.session import local_jars, spark_conf

    builder = SparkSession.builder.master("local[2]").appName("cdplake-tests")
    conf = {
        **spark_conf(local_env),
        "spark.sql.shuffle.partitions": "2",
        "spark.default.parallelism": "2",
        "spark.ui.enabled": "false",
        "spark.driver.host": "127.0.0.1",
        "spark.driver.bindAddress": "127.0.0.1",
        "spark.ui.showConsoleProgress": "false",
        "spark.databricks.delta.snapshotPartitions": "1",
        "spark.sql.sources.parallelPartitionDiscovery.parallelism": "2",
        "spark.driver.memory": "2g",
        "spark.sql.warehouse.dir": str(Path(local_env.storage.root) / "warehouse"),
    }
    # The S3 tests share this session: when `make jars-s3` has run, put the S3A jars on the
    # classpath too (the s3 fixtures set the endpoint on the Hadoop configuration).
    if any((Path(local_env.spark.jars_dir) / "s3").glob("*.jar")):
        conf["spark.jars"] = ",".join(local_jars(local_env.spark.jars_dir, ("core", "s3")))
    for key, value in conf.items():
        builder = builder.config(key, value)
    session = builder.getOrCreate()
    session.sparkContext.setLogLevel("ERROR")
    yield session
    session.stop()


@pytest.fixture
def lake_env(tmp_path: Path, local_env: EnvConfig) -> EnvConfig:
    """A fresh, empty local lake for one test (same Spark settings as the session)."""
    return load_env(
        "local",
        conf_dir=REPO / "conf",
        environ={
            **os.environ,
            "CDPLAKE__STORAGE__ROOT": str(tmp_path / "lake"),
            "CDPLAKE__DEMO__CUSTOMERS": "60",
        },
    )
