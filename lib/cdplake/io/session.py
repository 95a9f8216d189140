"""The one SparkSession builder: the only code that knows about Delta, S3A and jars.

Jobs, notebooks and tests all call :func:`build_session` and pass the session on; nothing
creates a session at import time.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import TYPE_CHECKING

from cdplake.config import ConfigError, EnvConfig

if TYPE_CHECKING:
    from pyspark.sql import SparkSession

# The Maven coordinates behind jvm/core/pom.xml and jvm/s3/pom.xml, for clusters that
# resolve jars themselves (`spark.jars: packages`, `spark-submit --packages`).
# delta-spark 4.4.1 on PyPI has no 4.4.1 jar on Maven Central; 4.4.0 is the matching jar.
DELTA_PACKAGES = ("io.delta:delta-spark_4.2_2.13:4.4.0",)
S3_PACKAGES = ("org.apache.hadoop:hadoop-aws:3.5.0",)

FAIR_POOLS_FILE = "fairscheduler.xml"  # in the conf folder: the fair scheduler's pools

DELTA_SQL_CONF = {
    "spark.sql.extensions": "io.delta.sql.DeltaSparkSessionExtension",
    "spark.sql.catalog.spark_catalog": "org.apache.spark.sql.delta.catalog.DeltaCatalog",
}


def jar_sets(cfg: EnvConfig) -> tuple[str, ...]:
    """Which jar sets this environment needs; the 690 MB S3 set only for S3 storage."""
    return ("core", "s3") if cfg.storage.kind == "s3" else ("core",)


def package_jars() -> list[str]:
    """Jars that ship inside installed Python packages: Splink's similarity UDFs.

    Splink's Spark backend registers ``jaro_winkler``, ``damerau_levenshtein`` and friends
    from a jar in its wheel; it must be on the driver's classpath before the JVM starts, so
    the builder adds it whenever splink is importable (clusters: pass the same path with
    ``--jars``, see README).
    """
    try:
        import splink
    except ImportError:
        return []
    jar = Path(splink.__file__).parent / "internals/files/spark_jars/scala-udf-similarity-0.2.1_spark4.x.jar"
    return [str(jar)] if jar.is_file() else []


def local_jars(jars_dir: str | Path, sets: tuple[str, ...]) -> list[str]:
    """Absolute paths of the jars in ``jars_dir/<set>`` for each set, then :func:`package_jars`.

    Raises:
        ConfigError: a set was never fetched (the message says which make target fetches it).
    """
    found: list[str] = []
    for name in sets:
        folder = Path(jars_dir) / name
        jars = sorted(str(p.resolve()) for p in folder.glob("*.jar"))
        if not jars:
            target = "jars-s3" if name == "s3" else "jars"
            raise ConfigError(f"no {name} jars in {folder}: run `make {target}` first")
        found.extend(jars)
    return found + package_jars()


def spark_conf(cfg: EnvConfig) -> dict[str, str]:
    """Every Spark setting the environment implies, as one flat dict (easy to test and print)."""
    conf: dict[str, str] = {
        "spark.sql.shuffle.partitions": str(cfg.spark.shuffle_partitions),
        "spark.sql.session.timeZone": "UTC",
        "spark.databricks.delta.schema.autoMerge.enabled": "false",
        # Jobs submitted from several threads of one driver (sources side by side, the
        # stream's two lanes) share the cores by pool instead of queueing behind each other.
        "spark.scheduler.mode": "FAIR",
        **DELTA_SQL_CONF,
    }
    pools = Path(cfg.conf_dir) / FAIR_POOLS_FILE
    if pools.is_file():
        # The pools' weights: the stream's front lane before its gold lane (see the file).
        conf["spark.scheduler.allocation.file"] = str(pools.resolve())
    sets = jar_sets(cfg)
    if cfg.spark.jars == "local":
        conf["spark.jars"] = ",".join(local_jars(cfg.spark.jars_dir, sets))
    elif cfg.spark.jars == "packages":
        coords = DELTA_PACKAGES + (S3_PACKAGES if "s3" in sets else ())
        conf["spark.jars.packages"] = ",".join(coords)
        if package_jars():
            conf["spark.jars"] = ",".join(package_jars())
    if cfg.storage.kind == "s3" and cfg.s3 is not None:
        access, secret = cfg.s3.credentials()
        conf.update(
            {
                "spark.hadoop.fs.s3a.endpoint": cfg.s3.endpoint,
                "spark.hadoop.fs.s3a.endpoint.region": cfg.s3.region,
                "spark.hadoop.fs.s3a.path.style.access": str(cfg.s3.path_style).lower(),
                "spark.hadoop.fs.s3a.connection.ssl.enabled": str(
                    cfg.s3.endpoint.startswith("https")
                ).lower(),
                "spark.hadoop.fs.s3a.access.key": access,
                "spark.hadoop.fs.s3a.secret.key": secret,
                "spark.hadoop.fs.s3a.aws.credentials.provider": (
                    "org.apache.hadoop.fs.s3a.SimpleAWSCredentialsProvider"
                ),
                "spark.hadoop.fs.s3a.change.detection.mode": "none",
            }
        )
    conf.update(cfg.spark.extra_conf)
    return conf


def launched_by_spark_submit() -> bool:
    """True when this Python process is the driver of a spark-submit (it owns the JVM)."""
    return "PYSPARK_GATEWAY_PORT" in os.environ


def build_session(cfg: EnvConfig, app_name: str | None = None) -> SparkSession:
    """Build (or join) the SparkSession for an environment.

    Args:
        cfg: the loaded environment.
        app_name: overrides ``spark.app_name`` (jobs pass their own name).

    Returns:
        A session with Delta enabled and, for S3 storage, S3A configured.
    """
    from pyspark.sql import SparkSession

    builder = SparkSession.builder.appName(app_name or cfg.spark.app_name)
    conf = spark_conf(cfg)
    if launched_by_spark_submit():
        # spark-submit already chose the master and started the driver JVM with its
        # --jars/--packages; setting them again here would silently override the cluster.
        conf.pop("spark.jars", None)
        conf.pop("spark.jars.packages", None)
    elif cfg.spark.master:
        builder = builder.master(cfg.spark.master)
        if cfg.spark.master.startswith("local"):
            # Python workers (pandas UDFs) must run this interpreter, the one with the
            # pinned packages, not whatever `python3` is first on PATH. PySpark reads the
            # worker executable from this variable when the context starts.
            os.environ.setdefault("PYSPARK_PYTHON", sys.executable)
    for key, value in conf.items():
        builder = builder.config(key, value)
    spark = builder.getOrCreate()
    spark.sparkContext.setLogLevel("WARN")
    _quiet_expected_warnings(spark)
    return spark


# Loggers whose warnings cdplake triggers on purpose: RFM quintile scores rank every buyer
# against every other in one window without a partition (features/rfm.py), and Spark warns
# "No Partition Defined for Window operation" each time such a plan runs.
QUIETED_LOGGERS = ("org.apache.spark.sql.execution.window",)


def _quiet_expected_warnings(spark: SparkSession) -> None:
    """Raise :data:`QUIETED_LOGGERS` to ERROR in the driver's log4j (a no-op without a JVM handle)."""
    jvm = getattr(spark.sparkContext, "_jvm", None)
    if jvm is None:
        return
    log4j = jvm.org.apache.logging.log4j
    for name in QUIETED_LOGGERS:
        log4j.core.config.Configurator.setLevel(name, log4j.Level.ERROR)
