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
from .positions import POSITION_OFFSET as ROBERTA_POSITION_OFFSET

# The transformers class of the softmax baseline for each task.
SOFTMAX_MODELS = {
    "mlm": "RobertaForMaskedLM",
    "classification": "RobertaForSequenceClassification",
    "token-classification": "RobertaForTokenClassification",
    "qa": "RobertaForQuestionAnswering",
    "multiple-choice": "RobertaForMultipleChoice",
}
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


def one_line_reason(exc: BaseException) -> str:
    """One line saying what an exception was about (at most 300 characters)."""
    text = " ".join(str(exc).split())
    return (text[:300] + "...") if len(text) > 300 else text or type(exc).__name__


def weights_bytes(model) -> int:
    """Bytes of a model's weights as saved."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def damaged_weights(path: str | Path, exc: BaseException, flag: str = "--model") -> str:
    """The one message for weights that cannot be read (no file, a truncated or empty file, a size
    that does not fit), the same from finetune, predict and convert."""
    return (
        f"{flag} {str(path)!r}: cannot load the weights ({one_line_reason(exc)}); the model directory is "
        "incomplete or damaged: copy it again, or use a checkpoint of the run"
    )


def missing_weights(path: str | Path, missing: list[str], flag: str = "--model") -> str:
    """The one message for weights that lack tensors of the model (which would train from noise)."""
    names = sorted(missing)
    shown = ", ".join(names[:3]) + (", ..." if len(names) > 3 else "")
    return (
        f"{flag} {str(path)!r}: the weights lack {len(names)} of the model's tensors ({shown}); the "
        "weight file belongs to another model or is damaged: copy the model directory again"
    )


def load_pretrained(model_class: Any, path: str | Path, *, new_head: bool = False, **kwargs: Any):
    """``model_class.from_pretrained(path)`` under the one rule for missing or damaged weights.

    Weights that cannot be read are refused (ConfigError, ``damaged_weights``); so are weights short
    of any tensor of the model, except, when ``new_head`` (fine-tuning a model for a task its
    directory was not trained on), the task head's: those are the only tensors allowed to start new.
    They are listed in the model's ``new_tensors`` attribute, for the caller to report.
    """
    try:
        model, info = model_class.from_pretrained(str(path), output_loading_info=True, **kwargs)
    except Exception as exc:  # OSError (no file), SafetensorError (truncated), size mismatches, ...
        raise ConfigError(damaged_weights(path, exc)) from None
    missing = list(info.get("missing_keys") or [])
    prefix = f"{model.base_model_prefix}."
    has_base = hasattr(model, model.base_model_prefix)  # a task model around the bare encoder
    head = [k for k in missing if has_base and not k.startswith(prefix)] if new_head else []
    lacking = [k for k in missing if k not in head]
    if lacking:
        raise ConfigError(missing_weights(path, lacking))
    model.new_tensors = sorted(head)
    return model
