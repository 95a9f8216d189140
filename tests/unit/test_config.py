"""Config parsing: env files, overrides, validation."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from cdplake.config import ConfigError, apply_env_overrides, load_env
from cdplake.io.session import DELTA_SQL_CONF, package_jars, spark_conf

REPO = Path(__file__).resolve().parents[2]
CONF = REPO / "conf"


def test_env_overrides_nest_and_parse_yaml_scalars():
    raw = {"storage": {"kind": "local", "root": ".lake"}, "demo": {"customers": 10}}
    out = apply_env_overrides(
        raw,
        {"CDPLAKE__STORAGE__ROOT": "/data", "CDPLAKE__DEMO__CUSTOMERS": "25", "OTHER": "x"},
    )
    assert out == {"storage": {"kind": "local", "root": "/data"}, "demo": {"customers": 25}}
    # the input is left untouched
    assert raw["storage"]["root"] == ".lake"


def test_spark_settings_in_overrides_keep_their_case_and_string_values():
    raw = {"spark": {"shuffle_partitions": 4, "extra_conf": {"spark.driver.memory": "2g"}}}
    out = apply_env_overrides(
        raw,
        {
            "CDPLAKE__SPARK__EXTRA_CONF__spark.sql.codegen.wholeStage": "false",
            "CDPLAKE__SPARK__SHUFFLE_PARTITIONS": "2",
        },
    )
    assert out == {
        "spark": {
            "shuffle_partitions": 2,
            "extra_conf": {"spark.driver.memory": "2g", "spark.sql.codegen.wholeStage": "false"},
        }
    }
    env = load_env(
        "local",
        conf_dir=CONF,
        environ={"CDPLAKE__SPARK__EXTRA_CONF__spark.sql.codegen.factoryMode": "NO_CODEGEN"},
    )
    assert spark_conf(env)["spark.sql.codegen.factoryMode"] == "NO_CODEGEN"


def test_local_env_resolves_relative_paths_against_repo_root():
    cfg = load_env("local", conf_dir=CONF, environ={})
    assert cfg.storage.root == str(REPO / ".lake")
    assert cfg.paths.table("silver", "events") == f"{REPO}/.lake/delta/silver/events"
    assert cfg.spark.jars_dir == str(REPO / ".jars")


def test_s3_env_needs_credentials_from_named_variables(monkeypatch):
    monkeypatch.delenv("CDPLAKE_S3_ACCESS_KEY", raising=False)
    cfg = load_env("s3", conf_dir=CONF, environ={})
    assert cfg.paths.landing("crm") == "s3a://cdplake/landing/crm"
    with pytest.raises(ConfigError, match="CDPLAKE_S3_ACCESS_KEY"):
        cfg.s3.credentials()


def test_s3_spark_conf_carries_endpoint_and_credentials(tmp_path: Path, monkeypatch):
    monkeypatch.setenv("CDPLAKE_S3_ACCESS_KEY", "ak")
    monkeypatch.setenv("CDPLAKE_S3_SECRET_KEY", "sk")
    for name in ("core", "s3"):
        (tmp_path / name).mkdir()
        (tmp_path / name / f"{name}.jar").write_bytes(b"")
    conf = spark_conf(load_env("s3", conf_dir=CONF, environ={"CDPLAKE__SPARK__JARS_DIR": str(tmp_path)}))
    assert conf["spark.hadoop.fs.s3a.access.key"] == "ak"
    assert conf["spark.hadoop.fs.s3a.endpoint"] == "http://127.0.0.1:8333"
    assert conf["spark.hadoop.fs.s3a.connection.ssl.enabled"] == "false"
    # the folder sets in order, then jars shipped in Python packages (Splink's UDFs)
    expected = [f"{tmp_path}/core/core.jar", f"{tmp_path}/s3/s3.jar", *package_jars()]
    assert conf["spark.jars"] == ",".join(expected)
    assert DELTA_SQL_CONF.items() <= conf.items()


def test_packages_mode_lists_maven_coordinates():
    conf = spark_conf(load_env("local", conf_dir=CONF, environ={"CDPLAKE__SPARK__JARS": "packages"}))
    assert conf["spark.jars.packages"] == "io.delta:delta-spark_4.2_2.13:4.4.0"
    # only the jars that ship inside Python packages are local files in this mode
    assert conf.get("spark.jars", "") == ",".join(package_jars())


def test_splink_similarity_jar_is_added_when_splink_is_installed():
    pytest.importorskip("splink")
    assert [Path(j).name for j in package_jars()] == ["scala-udf-similarity-0.2.1_spark4.x.jar"]


def test_missing_jars_say_which_make_target(tmp_path: Path):
    cfg = load_env("local", conf_dir=CONF, environ={"CDPLAKE__SPARK__JARS_DIR": str(tmp_path)})
    with pytest.raises(ConfigError, match="make jars"):
        spark_conf(cfg)


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ({"CDPLAKE__STORAGE__KIND": "ftp"}, "storage.kind"),
        ({"CDPLAKE__SPARK__JARS": "magic"}, "spark.jars"),
        ({"CDPLAKE__DEMO__COLOUR": "red"}, "unknown key"),
        ({"CDPLAKE__DEMO__END_DATE": "yesterday"}, "demo.end_date"),
        ({"CDPLAKE__PIPELINE__SOURCE_WORKERS": "0"}, "pipeline.source_workers"),
        ({"CDPLAKE__PIPELINE__SOURCE_WORKERS": "two"}, "pipeline.source_workers"),
        ({"CDPLAKE__PIPELINE__SOURCE_WORKERS": "1.5"}, "pipeline.source_workers"),
    ],
)
def test_bad_config_is_a_clear_error(override, message):
    with pytest.raises(ConfigError, match=message):
        load_env("local", conf_dir=CONF, environ=override)


def test_unknown_environment_is_a_clear_error():
    with pytest.raises(ConfigError, match="not found"):
        load_env("nope", conf_dir=CONF, environ={})


def test_the_intended_global_window_warning_is_quieted_on_the_driver(spark):
    from cdplake.io.session import QUIETED_LOGGERS, _quiet_expected_warnings

    log4j = spark.sparkContext._jvm.org.apache.logging.log4j

    def level(name: str) -> str:
        return str(log4j.LogManager.getLogger(name).getLevel().toString())

    window_exec = "org.apache.spark.sql.execution.window.WindowExec"
    assert window_exec.startswith(QUIETED_LOGGERS)
    before = level(window_exec)
    try:
        # the test session logs at ERROR already: start from the WARN that jobs run with
        log4j.core.config.Configurator.setLevel(QUIETED_LOGGERS[0], log4j.Level.WARN)
        assert level(window_exec) == "WARN"
        _quiet_expected_warnings(spark)
        assert level(window_exec) == "ERROR"
    finally:
        log4j.core.config.Configurator.setLevel(QUIETED_LOGGERS[0], log4j.Level.valueOf(before))


def test_spark_conf_points_the_fair_scheduler_at_the_pools_of_the_conf_folder(tmp_path: Path):
    assert spark_conf(load_env("local", conf_dir=CONF))["spark.scheduler.allocation.file"] == str(
        (CONF / "fairscheduler.xml").resolve()
    )
    # a conf folder without the file: the scheduler's default pools, no dangling path
    shutil.copytree(CONF / "env", tmp_path / "env")
    bare = load_env("local", conf_dir=tmp_path, environ={"CDPLAKE__SPARK__JARS_DIR": str(REPO / ".jars")})
    assert "spark.scheduler.allocation.file" not in spark_conf(bare)
