"""Typed configuration: environments, paths and business settings parsed from `conf/`."""

from cdplake.config.model import (
    ConfigError,
    DemoConfig,
    EnvConfig,
    LakePaths,
    PipelineConfig,
    S3Config,
    SparkConfig,
    StorageConfig,
    apply_env_overrides,
    default_conf_dir,
    load_env,
)

__all__ = [
    "ConfigError",
    "DemoConfig",
    "EnvConfig",
    "LakePaths",
    "PipelineConfig",
    "S3Config",
    "SparkConfig",
    "StorageConfig",
    "apply_env_overrides",
    "default_conf_dir",
    "load_env",
]
