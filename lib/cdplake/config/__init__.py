"""Typed configuration: environments, paths and business settings parsed from `conf/`."""

from cdplake.config.contracts import ContractField, SourceContract, load_contract
from cdplake.config.identity import GraphSettings, IdentityConfig, NeverLinkRules, load_identity_config
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
from cdplake.config.segments import Purpose, SegmentDefinition, SegmentsConfig, load_segments_config

__all__ = [
    "ContractField",
    "SourceContract",
    "load_contract",
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
    "GraphSettings",
    "IdentityConfig",
    "NeverLinkRules",
    "load_identity_config",
    "Purpose",
    "SegmentDefinition",
    "SegmentsConfig",
    "load_segments_config",
]
