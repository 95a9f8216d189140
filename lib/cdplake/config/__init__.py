"""Typed configuration: environments, paths and business settings parsed from `conf/`."""

from cdplake.config.contracts import ContractField, SourceContract, load_contract
from cdplake.config.features import FeaturesConfig, Trait, load_features_config
from cdplake.config.identity import (
    GraphSettings,
    IdentifierLimits,
    IdentityConfig,
    NeverLinkRules,
    load_identity_config,
)
from cdplake.config.linkage import (
    BlockingRule,
    ComparisonLevel,
    FieldComparison,
    LinkageConfig,
    TrainingSettings,
    load_linkage_config,
    parse_linkage_config,
)
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
from cdplake.config.segments import (
    ConsentRules,
    Purpose,
    SegmentDefinition,
    SegmentsConfig,
    load_segments_config,
)

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
    "FeaturesConfig",
    "Trait",
    "load_features_config",
    "GraphSettings",
    "IdentityConfig",
    "NeverLinkRules",
    "load_identity_config",
    "IdentifierLimits",
    "BlockingRule",
    "ComparisonLevel",
    "FieldComparison",
    "LinkageConfig",
    "TrainingSettings",
    "load_linkage_config",
    "parse_linkage_config",
    "ConsentRules",
    "Purpose",
    "SegmentDefinition",
    "SegmentsConfig",
    "load_segments_config",
]
