"""Training: configuration, optimiser and schedule, metrics, checkpoints, torchrun, the loop.

from yoso_core.training import TrainConfig, merge_config, train
result = train(merge_config("run.yaml", {"max_steps": 100}, task="qa"))
"""

from __future__ import annotations

from .config import FINETUNE_TASKS, TASKS, ConfigError, TrainConfig, merge_config, read_yaml, save_config
from .loop import TrainResult, train

__all__ = [
    "FINETUNE_TASKS",
    "TASKS",
    "ConfigError",
    "TrainConfig",
    "TrainResult",
    "merge_config",
    "read_yaml",
    "save_config",
    "train",
]
