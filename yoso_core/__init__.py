"""yoso: YOSO (You Only Sample Almost Once) attention and models for long inputs.

``import yoso_core`` stays light: the model classes load transformers on first use.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

__version__ = "0.1.0"

_MODELING = (
    "YosoModel",
    "YosoForMaskedLM",
    "YosoForSequenceClassification",
    "YosoForMultipleChoice",
    "YosoForTokenClassification",
    "YosoForQuestionAnswering",
    "YosoPreTrainedModel",
    "TASK_MODELS",
)

__all__ = [
    "YosoConfig",
    "YosoModel",
    "YosoForMaskedLM",
    "YosoForSequenceClassification",
    "YosoForMultipleChoice",
    "YosoForTokenClassification",
    "YosoForQuestionAnswering",
    "YosoPreTrainedModel",
    "TASK_MODELS",
]

if TYPE_CHECKING:
    from .config import YosoConfig
    from .modeling import (
        TASK_MODELS,
        YosoForMaskedLM,
        YosoForMultipleChoice,
        YosoForQuestionAnswering,
        YosoForSequenceClassification,
        YosoForTokenClassification,
        YosoModel,
        YosoPreTrainedModel,
    )


def __getattr__(name: str):
    if name == "YosoConfig":
        from .config import YosoConfig

        return YosoConfig
    if name in _MODELING:
        from . import modeling

        return getattr(modeling, name)
    raise AttributeError(f"module 'yoso_core' has no attribute {name!r}")
