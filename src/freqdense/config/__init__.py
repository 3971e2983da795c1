"""Experiment configs: typed schema and strict YAML loading."""

from .load import build_config, config_to_dict, list_shipped_configs, load_config, load_raw_config, parse_overrides
from .schema import (
    DataConfig,
    EvalConfig,
    ExperimentConfig,
    ModelConfig,
    OptimConfig,
    PruneConfig,
    ScheduleConfig,
    TaskConfig,
    TrainConfig,
)

__all__ = [
    "DataConfig",
    "EvalConfig",
    "ExperimentConfig",
    "ModelConfig",
    "OptimConfig",
    "PruneConfig",
    "ScheduleConfig",
    "TaskConfig",
    "TrainConfig",
    "build_config",
    "config_to_dict",
    "list_shipped_configs",
    "load_config",
    "load_raw_config",
    "parse_overrides",
]
