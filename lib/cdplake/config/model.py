"""Typed, frozen configuration parsed once from `conf/` YAML.

An environment file (`conf/env/<name>.yaml`) says where the lake lives and how Spark runs.
Environment variables override any key: ``CDPLAKE__STORAGE__ROOT=/data/lake`` sets
``storage.root``. Secrets are never stored: the config names the environment variable that
holds them (``access_key_env``) and :meth:`S3Config.credentials` reads it at run time.
"""

from __future__ import annotations

import datetime as dt
import os
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

ENV_PREFIX = "CDPLAKE__"
JAR_MODES = ("local", "packages", "provided")
STORAGE_KINDS = ("local", "s3")


class ConfigError(ValueError):
    """A configuration file or override is missing, malformed or inconsistent."""


@dataclass(frozen=True)
class SparkConfig:
    """How the one SparkSession is built.

    Attributes:
        master: Spark master URL; ``None`` leaves it to spark-submit or the cluster.
        app_name: application name shown in the Spark UI.
        shuffle_partitions: ``spark.sql.shuffle.partitions``.
        jars: ``local`` (jars resolved by Maven into ``jars_dir``), ``packages`` (Spark
            resolves Maven coordinates itself) or ``provided`` (the cluster has them).
        jars_dir: folder with the ``core``/``s3`` jar sets; relative to the repo root.
        extra_conf: any further Spark settings, as strings.
    """

    master: str | None = "local[2]"
    app_name: str = "cdplake"
    shuffle_partitions: int = 4
    jars: str = "local"
    jars_dir: str = ".jars"
    extra_conf: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class S3Config:
    """An S3-compatible endpoint; credentials come from the named environment variables."""

    endpoint: str
    bucket: str
    region: str = "us-east-1"
    access_key_env: str = "CDPLAKE_S3_ACCESS_KEY"
    secret_key_env: str = "CDPLAKE_S3_SECRET_KEY"
    path_style: bool = True

    def credentials(self) -> tuple[str, str]:
        """Read the access and secret key from the environment.

        Raises:
            ConfigError: when either variable is unset.
        """
        missing = [n for n in (self.access_key_env, self.secret_key_env) if not os.environ.get(n)]
        if missing:
            raise ConfigError(f"S3 credentials missing: set environment variable(s) {', '.join(missing)}")
        return os.environ[self.access_key_env], os.environ[self.secret_key_env]


@dataclass(frozen=True)
class StorageConfig:
    """Where the lake lives: ``root`` holds landing/, the Delta tables and checkpoints."""

    kind: str = "local"
    root: str = ".lake"


@dataclass(frozen=True)
class DemoConfig:
    """Knobs of the seeded demo-data generator.

    Attributes:
        customers: number of true persons.
        days: calendar days of activity, ending with ``end_date`` (inclusive).
        seed: the one seed every random choice derives from.
        end_date: last day of the demo window.
        bad_record_rate: share of records deliberately made bad (for the quarantine).
        duplicate_rate: share of JSON records delivered twice (webhook/batch retries).
    """

    customers: int = 500
    days: int = 30
    seed: int = 42
    end_date: dt.date = dt.date(2026, 11, 1)
    bad_record_rate: float = 0.004
    duplicate_rate: float = 0.005


@dataclass(frozen=True)
class PipelineConfig:
    """Business settings shared by the transforms."""

    default_phone_region: str = "GB"
    business_start: dt.date = dt.date(2015, 1, 1)
    run_date: dt.date | None = None
    # Sources whose bronze and silver queries run side by side (1: one after another).
    source_workers: int = 4


@dataclass(frozen=True)
class EnvConfig:
    """One environment: everything a job needs to know before it touches data."""

    name: str
    conf_dir: Path
    spark: SparkConfig
    storage: StorageConfig
    s3: S3Config | None
    demo: DemoConfig
    pipeline: PipelineConfig

    @property
    def paths(self) -> LakePaths:
        return LakePaths(self.storage.root)


@dataclass(frozen=True)
class LakePaths:
    """The lake's folder layout under one root (a local path or an ``s3a://`` URI)."""

    root: str

    def _join(self, *parts: str) -> str:
        return "/".join([self.root.rstrip("/"), *parts])

    def landing(self, source: str = "") -> str:
        return self._join("landing", source) if source else self._join("landing")

    def table(self, layer: str, name: str) -> str:
        return self._join("delta", layer, name)

    def checkpoint(self, name: str) -> str:
        return self._join("_checkpoints", name)

    def ground_truth(self) -> str:
        return self._join("ground_truth")

    def models(self, kind: str) -> str:
        """Saved models of one kind, e.g. ``models/linkage/<version>.json``."""
        return self._join("models", kind)


def _read_yaml(path: Path) -> dict[str, Any]:
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file not found: {path}") from None
    except yaml.YAMLError as exc:
        raise ConfigError(f"config file {path} is not valid YAML: {exc}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"config file {path} must hold a mapping at the top level")
    return data


def apply_env_overrides(raw: dict[str, Any], environ: Mapping[str, str]) -> dict[str, Any]:
    """Return a copy of ``raw`` with ``CDPLAKE__SECTION__KEY=value`` variables applied.

    Values are parsed as YAML scalars so ``4`` stays an int and ``true`` a bool. Section and
    field names are case-insensitive; a key under a ``*_conf`` mapping is a Spark setting
    name, case-sensitive, and is kept as written with its value as a string:
    ``CDPLAKE__SPARK__EXTRA_CONF__spark.sql.codegen.wholeStage=false``.
    """
    out: dict[str, Any] = {k: (dict(v) if isinstance(v, dict) else v) for k, v in raw.items()}
    for name, value in sorted(environ.items()):
        if not name.startswith(ENV_PREFIX):
            continue
        keys: list[str] = []
        verbatim = False  # is the last key a Spark setting name (under a *_conf mapping)?
        for part in filter(None, name[len(ENV_PREFIX) :].split("__")):
            verbatim = bool(keys) and keys[-1].endswith("_conf")
            keys.append(part if verbatim else part.lower())
        if not keys:
            continue
        node = out
        for key in keys[:-1]:
            child = node.get(key)
            if not isinstance(child, dict):
                child = {}
            node[key] = child = dict(child)
            node = child
        node[keys[-1]] = value if verbatim else yaml.safe_load(value)
    return out


def _section(cls: type, raw: Any, where: str) -> Any:
    if raw is None:
        return cls()
    if not isinstance(raw, dict):
        raise ConfigError(f"{where} must be a mapping, got {type(raw).__name__}")
    known = set(cls.__dataclass_fields__)
    unknown = set(raw) - known
    if unknown:
        raise ConfigError(f"{where}: unknown key(s) {sorted(unknown)}; expected some of {sorted(known)}")
    try:
        return cls(**raw)
    except TypeError as exc:
        raise ConfigError(f"{where}: {exc}") from None


def _positive_int(value: Any, where: str) -> int:
    try:
        number = int(value)
    except (TypeError, ValueError):
        raise ConfigError(f"{where} must be a whole number, got {value!r}") from None
    if number < 1 or str(number) != str(value).strip():
        raise ConfigError(f"{where} must be a whole number of at least 1, got {value!r}")
    return number


def _as_date(value: Any, where: str) -> dt.date | None:
    if value is None or isinstance(value, dt.date):
        return value
    try:
        return dt.date.fromisoformat(str(value))
    except ValueError:
        raise ConfigError(f"{where} must be a date (YYYY-MM-DD), got {value!r}") from None


def default_conf_dir() -> Path:
    """``$CDPLAKE_CONF_DIR``, else ``./conf`` or ``../conf`` (a notebook in ``notebooks/``),
    else the ``conf/`` of this source checkout."""
    if os.environ.get("CDPLAKE_CONF_DIR"):
        return Path(os.environ["CDPLAKE_CONF_DIR"])
    for candidate in (Path.cwd() / "conf", Path.cwd().parent / "conf"):
        if (candidate / "env").is_dir():
            return candidate
    return Path(__file__).resolve().parents[3] / "conf"


def repo_root(conf_dir: Path) -> Path:
    """Relative local paths in the config are taken from the folder holding ``conf/``."""
    return conf_dir.resolve().parent


def load_env(
    name: str = "local",
    conf_dir: str | Path | None = None,
    environ: Mapping[str, str] | None = None,
) -> EnvConfig:
    """Load and validate ``conf/env/<name>.yaml`` with environment overrides.

    Args:
        name: environment name (``local``, ``s3``, ``databricks``...).
        conf_dir: the ``conf/`` folder; see :func:`default_conf_dir`.
        environ: the environment to read overrides from (``os.environ`` by default).

    Raises:
        ConfigError: unknown environment, unknown keys, bad values.
    """
    conf = Path(conf_dir) if conf_dir is not None else default_conf_dir()
    env = os.environ if environ is None else environ
    raw = apply_env_overrides(_read_yaml(conf / "env" / f"{name}.yaml"), env)

    spark = _section(SparkConfig, raw.get("spark"), "spark")
    if spark.jars not in JAR_MODES:
        raise ConfigError(f"spark.jars must be one of {JAR_MODES}, got {spark.jars!r}")
    spark = SparkConfig(
        master=spark.master,
        app_name=spark.app_name,
        shuffle_partitions=int(spark.shuffle_partitions),
        jars=spark.jars,
        jars_dir=str(_resolve_local(spark.jars_dir, conf)),
        extra_conf={str(k): str(v) for k, v in dict(spark.extra_conf or {}).items()},
    )

    storage = _section(StorageConfig, raw.get("storage"), "storage")
    if storage.kind not in STORAGE_KINDS:
        raise ConfigError(f"storage.kind must be one of {STORAGE_KINDS}, got {storage.kind!r}")
    s3 = _section(S3Config, raw["s3"], "s3") if raw.get("s3") else None
    if storage.kind == "s3":
        if s3 is None:
            raise ConfigError("storage.kind is s3 but there is no s3: section")
        if not storage.root.startswith("s3a://"):
            raise ConfigError(f"storage.root must be an s3a:// URI for s3 storage, got {storage.root!r}")
    else:
        storage = StorageConfig(kind="local", root=str(_resolve_local(storage.root, conf)))

    demo_raw = dict(raw.get("demo") or {})
    if "end_date" in demo_raw:
        demo_raw["end_date"] = _as_date(demo_raw["end_date"], "demo.end_date")
    demo = _section(DemoConfig, demo_raw, "demo")
    if demo.customers < 1 or demo.days < 1:
        raise ConfigError("demo.customers and demo.days must be positive")

    pipe_raw = dict(raw.get("pipeline") or {})
    for key in ("business_start", "run_date"):
        if key in pipe_raw:
            pipe_raw[key] = _as_date(pipe_raw[key], f"pipeline.{key}")
    if "source_workers" in pipe_raw:
        pipe_raw["source_workers"] = _positive_int(pipe_raw["source_workers"], "pipeline.source_workers")
    pipeline = _section(PipelineConfig, pipe_raw, "pipeline")

    return EnvConfig(
        name=str(raw.get("name", name)),
        conf_dir=conf.resolve(),
        spark=spark,
        storage=storage,
        s3=s3,
        demo=demo,
        pipeline=pipeline,
    )


def _resolve_local(path: str, conf_dir: Path) -> Path:
    p = Path(path).expanduser()
    return p if p.is_absolute() else (repo_root(conf_dir) / p).resolve()
