"""One SparkSession for the whole test run, Delta enabled, every path under a temp folder."""

from __future__ import annotations

import os
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from cdplake.config import EnvConfig, load_env

REPO = Path(__file__).resolve().parents[1]

# Python workers (pandas UDFs) must run this interpreter, the one with pandas and
# phonenumbers, also when pytest is started without the Makefile's PYSPARK_PYTHON export.
os.environ.setdefault("PYSPARK_PYTHON", sys.executable)

# A pytest-xdist worker runs under execnet, whose __main__ has neither __spec__ nor __file__:
# pyspark.sql.connect (imported by great_expectations) takes that for a doctest run and calls
# sys.exit(0) when the Spark Connect extras are absent. Give the worker's __main__ a file name.
_main = sys.modules["__main__"]
if getattr(_main, "__spec__", None) is None and not hasattr(_main, "__file__"):
    _main.__file__ = "<pytest-xdist worker>"


# Spark settings for every session the test run starts, in this process or in a job subprocess
# (they inherit the variables): expressions are interpreted instead of compiled to Java. The
# tests run thousands of queries over a few rows each, and compiling a query's generated code
# (Janino) cost more than its rows: it was the most frequent frame in samples of a test JVM's
# threads. Interpreted evaluation is a mode Spark supports and tests itself; the environments
# in conf/ keep code generation. Alone, test_identity_limits.py ran 145 -> 120 s and the
# review-decisions test 139 -> 120 s (BENCHMARKS.md, "Test suite"). CDPLAKE_TEST_CODEGEN=1
# runs the tests with code generation.
TEST_SPARK_CONF = {
    "spark.sql.codegen.wholeStage": "false",
    "spark.sql.codegen.factoryMode": "NO_CODEGEN",
}
if os.environ.get("CDPLAKE_TEST_CODEGEN") != "1":
    for _key, _value in TEST_SPARK_CONF.items():
        os.environ.setdefault(f"CDPLAKE__SPARK__EXTRA_CONF__{_key}", _value)

# JVM flags for the short-lived JVMs a test starts (job subprocesses, spark-submit, the
# standalone cluster's daemons and executors): they inherit JAVA_TOOL_OPTIONS. Such a JVM
# runs each piece of code a few times, and C2 compiler threads took 41 % of the JVM CPU of a
# two-wave stream job; C1 only (with a code cache big enough not to be swept) and the serial
# collector cut it from 410 s to 281 s. The two session drivers are not short-lived: they run
# every in-process test for the whole run, and with interpreted expressions C2 pays off there
# (review-decisions test alone: 75 s wall and 140 s JVM CPU on JVM defaults, 103 s and 116 s
# on C1; the suite: 16 min instead of 24). So `spark` starts its driver without these flags.
# CDPLAKE_TEST_JVM_OPTIONS replaces them; set it empty to run every JVM on the defaults.
TEST_JVM_OPTIONS = os.environ.get(
    "CDPLAKE_TEST_JVM_OPTIONS",
    "-XX:TieredStopAtLevel=1 -XX:ReservedCodeCacheSize=256m -XX:+UseSerialGC",
)
if TEST_JVM_OPTIONS and TEST_JVM_OPTIONS not in os.environ.get("JAVA_TOOL_OPTIONS", ""):
    os.environ["JAVA_TOOL_OPTIONS"] = " ".join(
        filter(None, [os.environ.get("JAVA_TOOL_OPTIONS", ""), TEST_JVM_OPTIONS])
    )


@contextmanager
def _without_test_jvm_options() -> Iterator[None]:
    """JAVA_TOOL_OPTIONS without :data:`TEST_JVM_OPTIONS` inside the block (for the drivers)."""
    saved = os.environ.get("JAVA_TOOL_OPTIONS")
    if saved is not None and TEST_JVM_OPTIONS:
        rest = saved.replace(TEST_JVM_OPTIONS, "").strip()
        if rest:
            os.environ["JAVA_TOOL_OPTIONS"] = rest
        else:
            del os.environ["JAVA_TOOL_OPTIONS"]
    try:
        yield
    finally:
        if saved is not None:
            os.environ["JAVA_TOOL_OPTIONS"] = saved


# Parallel runs: `make test` runs two pytest-xdist workers, each with its own SparkSession (one
# Spark driver leaves part of the 2 cores idle: plan analysis and job scheduling are single
# threaded). A worker takes whole modules, so a module-scoped fixture is built once; the
# modules that share a costly session-scoped fixture are one unit, so it is built once too.
# (pytest-xdist's `loadgroup` cannot do this on pytest 9: it renames node ids through an
# attribute pytest 9 no longer reads.)
_SHARED_FIXTURE_GROUPS = {
    "two_wave_stream": "stream",
    "s3_server": "s3-cluster",
    "spark_cluster": "s3-cluster",
}
_MODULE_GROUPS = {
    "tests/integration/test_notebook_consumers.py": "stream",
    "tests/integration/test_stream_crash.py": "stream",
    "tests/integration/test_stream_pipeline.py": "stream",
    "tests/integration/test_realtime_lane.py": "stream",
    "tests/integration/test_s3_storage.py": "s3-cluster",
    "tests/integration/test_cluster_submit.py": "s3-cluster",
}
_GROUP_ORDER = ("stream", "s3-cluster")  # the slowest units, queued first


def _module_of(nodeid: str) -> str:
    return nodeid.split("::", 1)[0]


def _unit_of(nodeid: str) -> str:
    module = _module_of(nodeid)
    return _MODULE_GROUPS.get(module, module)


@pytest.hookimpl(optionalhook=True, tryfirst=True)
def pytest_xdist_make_scheduler(config: pytest.Config, log):
    """Schedule by :func:`_unit_of`, in collection order (see pytest_collection_modifyitems)."""
    from xdist.scheduler import LoadScopeScheduling

    class ModuleGroupScheduling(LoadScopeScheduling):
        def _split_scope(self, nodeid: str) -> str:
            return _unit_of(nodeid)

    config.option.loadscopereorder = False
    return ModuleGroupScheduling(config, log)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Check every user of a shared session fixture is in its unit; queue the slow units first."""
    for item in items:
        module = _module_of(item.nodeid)
        for fixture, group in _SHARED_FIXTURE_GROUPS.items():
            if fixture in item.fixturenames and _MODULE_GROUPS.get(module) != group:
                raise pytest.UsageError(
                    f"{module} uses the session fixture {fixture}: add it to _MODULE_GROUPS as {group!r}"
                    " in tests/conftest.py, or a parallel run builds the fixture twice"
                )

    def rank(item: pytest.Item) -> tuple[int, int]:
        unit = _unit_of(item.nodeid)
        tier = _GROUP_ORDER.index(unit) if unit in _GROUP_ORDER else len(_GROUP_ORDER)
        return tier, 0 if "/integration/" in item.nodeid else 1

    items.sort(key=rank)  # stable: a module keeps its own test order


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
        "spark.driver.memory": "3g",
        # One session runs every test: keep the status store's history of finished jobs,
        # stages and SQL plans short, or it grows on the driver heap for the whole run.
        "spark.ui.retainedJobs": "50",
        "spark.ui.retainedStages": "50",
        "spark.ui.retainedTasks": "2000",
        "spark.sql.ui.retainedExecutions": "20",
        "spark.sql.streaming.ui.retainedQueries": "20",
        "spark.sql.streaming.ui.retainedProgressUpdates": "20",
        "spark.sql.warehouse.dir": str(Path(local_env.storage.root) / "warehouse"),
    }
    # The S3 tests share this session: when `make jars-s3` has run, put the S3A jars on the
    # classpath too (the s3 fixtures set the endpoint on the Hadoop configuration).
    if any((Path(local_env.spark.jars_dir) / "s3").glob("*.jar")):
        conf["spark.jars"] = ",".join(local_jars(local_env.spark.jars_dir, ("core", "s3")))
    for key, value in conf.items():
        builder = builder.config(key, value)
    with _without_test_jvm_options():  # a long-lived driver: JIT defaults (see above)
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


@pytest.fixture(autouse=True, scope="module")
def _module_hygiene(request: pytest.FixtureRequest):
    """After each test module: no streaming query may outlive it, and its cache is dropped.

    A query left running by a failed fixture would keep consuming the shared session's two
    cores and memory for every later module. Set ``CDPLAKE_TEST_HEAPLOG=<file>`` to append
    the driver's used heap (MB) after each module, for hunting memory growth across the run.
    """
    yield
    from pyspark.sql import SparkSession

    session = SparkSession._instantiatedSession  # the run's session, if a test started it
    if session is None:
        return
    leftover = [q.name or q.id for q in session.streams.active]
    for query in session.streams.active:
        query.stop()
    session.catalog.clearCache()
    log = os.environ.get("CDPLAKE_TEST_HEAPLOG")
    if log:
        jvm = session.sparkContext._jvm
        jvm.System.gc()
        runtime = jvm.java.lang.Runtime.getRuntime()
        used = (runtime.totalMemory() - runtime.freeMemory()) // (1 << 20)
        with open(log, "a") as fh:
            fh.write(f"{request.module.__name__}\t{used}\n")
    assert not leftover, f"streaming queries left running by {request.module.__name__}: {leftover}"
