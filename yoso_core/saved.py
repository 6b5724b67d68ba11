"""Reading a saved model directory: its config, task, model class, tokenizer files and length.

A directory holds a YOSO model (``model_type`` ``yoso``) or the softmax baseline (a RoBERTa
model, ``model_type`` ``roberta``). The task it serves is its config's ``task`` field, else the one
its ``architectures`` name. Training (``yoso_core.training``) and prediction (``yoso_core.predict``)
both read directories through this module.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from .errors import ConfigError

# The transformers class of the softmax baseline for each task.
SOFTMAX_MODELS = {
    "mlm": "RobertaForMaskedLM",
    "classification": "RobertaForSequenceClassification",
    "token-classification": "RobertaForTokenClassification",
    "qa": "RobertaForQuestionAnswering",
    "multiple-choice": "RobertaForMultipleChoice",
}
# RoBERTa's position ids start at padding_idx + 1 = 2: its table has two rows more than its length.
ROBERTA_POSITION_OFFSET = 2
# The files a tokenizer is saved as (fast, BPE, WordPiece and SentencePiece tokenizers): a
# directory with any of them has a tokenizer, and a conversion copies each one there is.
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "added_tokens.json",
    "spiece.model",
    "spm.model",
    "sentencepiece.bpe.model",
)


def quiet_transformers() -> None:
    """Silence transformers' download/shard progress bars and info logs (our logs go to stderr)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def architecture_tasks() -> dict[str, str]:
    """Which task each transformers architecture name serves: ``TASK_MODELS``, ``SOFTMAX_MODELS`` inverted."""
    from .modeling import TASK_MODELS

    yoso = {cls.__name__: task for task, cls in TASK_MODELS.items()}
    return yoso | {name: task for task, name in SOFTMAX_MODELS.items()}


def task_of(model_config: Any) -> str | None:
    """The task a saved model serves: its ``task`` field, else its architecture, else None."""
    task = getattr(model_config, "task", None)
    if task:
        return task
    tasks = architecture_tasks()
    for name in getattr(model_config, "architectures", None) or ():
        if name in tasks:
            return tasks[name]
    return None


def saved_model_type(path: str | Path) -> str | None:
    """The ``model_type`` in a directory's config.json (ConfigError when it cannot be read)."""
    try:
        return json.loads((Path(path) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--model {str(path)!r}: cannot read its config.json ({exc})") from None


def load_model_config(path: str | Path):
    """The YosoConfig of a model directory (ConfigError when it is not one, or not a YOSO model)."""
    from .config import YosoConfig

    model_type = saved_model_type(path)
    if model_type != "yoso":
        raise ConfigError(
            f"--model {str(path)!r} holds a {model_type!r} model, not a YOSO one; convert it first with "
            "`yoso convert SRC DST`"
        )
    try:
        return YosoConfig.from_pretrained(str(path))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"--model {str(path)!r}: cannot read its config.json ({exc})") from None


def load_saved_config(path: str | Path):
    """The config of a YOSO or RoBERTa (softmax baseline) directory; ConfigError for anything else."""
    if saved_model_type(path) != "roberta":
        return load_model_config(path)
    from transformers import RobertaConfig

    try:
        return RobertaConfig.from_pretrained(str(path))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"--model {str(path)!r}: cannot read its config.json ({exc})") from None


def is_softmax(model_config: Any) -> bool:
    """Whether a model config is the softmax baseline's (a RoBERTa config)."""
    return getattr(model_config, "model_type", None) == "roberta"


def max_length_of(model_config: Any) -> int:
    """The longest input a saved model takes: RoBERTa's table has two offset rows more than that."""
    n = int(model_config.max_position_embeddings)
    return n - ROBERTA_POSITION_OFFSET if is_softmax(model_config) else n


def task_model_class(model_config: Any, task: str):
    """The class that loads a saved model of ``task``: ours for YOSO, transformers' for RoBERTa."""
    if is_softmax(model_config):
        import transformers

        return getattr(transformers, SOFTMAX_MODELS[task])
    from .modeling import TASK_MODELS

    return TASK_MODELS[task]


def has_tokenizer(path: str | Path) -> bool:
    """Whether a directory holds tokenizer files."""
    return any((Path(path) / name).is_file() for name in TOKENIZER_FILES)
