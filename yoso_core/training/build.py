"""Model, tokenizer and labels of a run: from scratch (a size name) or from a saved directory.

- From scratch (``--model tiny|small|base``): the tokenizer is ``--tokenizer`` or a byte-level BPE
  trained on the training text; the model gets ``vocab_size = len(tokenizer)`` and
  ``max_position_embeddings = seq_len``.
- From a directory (ours or transformers'): its tokenizer unless ``--tokenizer`` is given; the
  maximum length is its ``max_position_embeddings``; ``seq_len`` must fit in it. When the directory
  already holds a model of the same task, its label order is kept.

The task and labels are stored in the saved config (``task``, ``id2label``, ``label2id``,
``architectures``) so ``yoso predict`` knows what a directory does.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..sizes import MODEL_SIZES
from .config import ConfigError, TrainConfig

# Which task each transformers architecture name serves (for directories without ``task``).
ARCHITECTURE_TASKS = {
    "YosoForMaskedLM": "mlm",
    "YosoForSequenceClassification": "classification",
    "YosoForTokenClassification": "token-classification",
    "YosoForQuestionAnswering": "qa",
    "YosoForMultipleChoice": "multiple-choice",
}
_TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "vocab.json", "vocab.txt", "spm.model")


def quiet_transformers() -> None:
    """Silence transformers' download/shard progress bars and info logs (our logs go to stderr)."""
    import transformers

    transformers.utils.logging.disable_progress_bar()
    transformers.utils.logging.set_verbosity_error()


def from_scratch(config: TrainConfig) -> bool:
    """True when ``--model`` names a size rather than a directory."""
    return config.model in MODEL_SIZES


def task_of(model_config: Any) -> str | None:
    """The task a saved model serves: its ``task`` field, else its architecture, else None."""
    task = getattr(model_config, "task", None)
    if task:
        return task
    for name in getattr(model_config, "architectures", None) or ():
        if name in ARCHITECTURE_TASKS:
            return ARCHITECTURE_TASKS[name]
    return None


def load_model_config(path: str | Path):
    """The YosoConfig of a model directory (ConfigError when it is not one, or not a YOSO model)."""
    import json

    from ..config import YosoConfig

    try:
        model_type = json.loads((Path(path) / "config.json").read_text()).get("model_type")
    except (OSError, ValueError) as exc:
        raise ConfigError(f"--model {str(path)!r}: cannot read its config.json ({exc})") from None
    if model_type != "yoso":
        raise ConfigError(
            f"--model {str(path)!r} holds a {model_type!r} model, not a YOSO one; convert it first with "
            "`yoso convert SRC DST`"
        )
    try:
        return YosoConfig.from_pretrained(str(path))
    except (OSError, ValueError, TypeError) as exc:
        raise ConfigError(f"--model {str(path)!r}: cannot read its config.json ({exc})") from None


def has_tokenizer(path: str | Path) -> bool:
    """Whether a directory holds tokenizer files."""
    return any((Path(path) / name).is_file() for name in _TOKENIZER_FILES)


def model_max_length(config: TrainConfig) -> int:
    """The tokenizer's maximum length: the model's ``max_position_embeddings`` (``seq_len`` from scratch)."""
    if from_scratch(config):
        return config.seq_len
    limit = load_model_config(config.model).max_position_embeddings
    if config.seq_len > limit:
        raise ConfigError(
            f"--seq-len {config.seq_len} exceeds the model's max_position_embeddings {limit}; use --seq-len "
            f"{limit} or less (or extend the model with `yoso convert --max-position-embeddings`)"
        )
    return limit


def prepare_tokenizer(config: TrainConfig, records: Sequence[dict]):
    """The tokenizer of the run (see the module docstring)."""
    from ..data import build_tokenizer, load_tokenizer, training_texts

    max_length = model_max_length(config)
    if config.tokenizer is not None:
        try:
            return load_tokenizer(config.tokenizer, max_length=max_length)
        except (OSError, ValueError) as exc:
            raise ConfigError(f"--tokenizer {config.tokenizer!r} cannot be loaded: {exc}") from None
    if not from_scratch(config):
        if not has_tokenizer(config.model):
            raise ConfigError(
                f"--model {config.model!r} holds no tokenizer; give one with --tokenizer DIR|NAME"
            )
        return load_tokenizer(config.model, max_length=max_length)
    return build_tokenizer(
        training_texts(config.task, records), vocab_size=config.vocab_size, max_length=max_length
    )


def check_tokenizer(config: TrainConfig, tokenizer) -> None:
    """ConfigError when the tokenizer lacks a token the task needs (padding; <mask> for mlm)."""
    if tokenizer.pad_token_id is None:
        raise ConfigError("the tokenizer has no padding token; give a --tokenizer that defines one")
    if config.task == "mlm" and tokenizer.mask_token_id is None:
        raise ConfigError(
            "masked-LM pretraining needs a tokenizer with a mask token; give another --tokenizer"
        )


def resolve_labels(config: TrainConfig, records: Sequence[dict]) -> list[str] | None:
    """Label names of the run: the data's, in the saved model's order when it serves the same task."""
    from ..data import label_names

    names = label_names(config.task, records)
    if names is None or from_scratch(config):
        return names
    saved = load_model_config(config.model)
    if task_of(saved) != config.task or not getattr(saved, "label2id", None):
        return names
    known = [saved.id2label[i] for i in range(len(saved.id2label))]
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ConfigError(
            f"labels {unknown} of the data are unknown to --model {config.model!r} (which knows {known}); "
            "fine-tune from its pretrained (mlm) checkpoint instead, or fix the data"
        )
    return known


def _model_overrides(config: TrainConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if config.dropout is not None:
        out["hidden_dropout_prob"] = config.dropout
        out["attention_probs_dropout_prob"] = config.dropout
    for name in ("use_expectation", "num_hash", "hash_code_len", "conv_window"):
        if getattr(config, name) is not None:
            out[name] = getattr(config, name)
    return out


def build_model(config: TrainConfig, tokenizer, labels: list[str] | None):
    """The task model: initialised from the seed (from scratch) or loaded from ``--model``."""
    from ..modeling import TASK_MODELS
    from ..sizes import size_config

    fields = _model_overrides(config)
    if labels is not None:
        fields["id2label"] = dict(enumerate(labels))
        fields["label2id"] = {name: i for i, name in enumerate(labels)}
        fields["num_labels"] = len(labels)
    model_class = TASK_MODELS[config.task]
    if from_scratch(config):
        special = {
            "pad_token_id": tokenizer.pad_token_id,
            "bos_token_id": tokenizer.bos_token_id
            if tokenizer.bos_token_id is not None
            else tokenizer.cls_token_id,
            "eos_token_id": tokenizer.eos_token_id
            if tokenizer.eos_token_id is not None
            else tokenizer.sep_token_id,
        }
        model_config = size_config(
            config.model,
            vocab_size=len(tokenizer),
            max_position_embeddings=config.seq_len,
            **special,
            **fields,
        )
        model = model_class(model_config)
    else:
        saved = load_model_config(config.model)
        if len(tokenizer) > saved.vocab_size:
            raise ConfigError(
                f"the tokenizer has {len(tokenizer)} tokens but --model {config.model!r} only "
                f"{saved.vocab_size} embeddings; use the model's own tokenizer"
            )
        try:
            model = model_class.from_pretrained(config.model, **fields)
        except (OSError, ValueError, RuntimeError) as exc:
            raise ConfigError(f"--model {config.model!r} cannot be loaded: {exc}") from None
    model.config.task = config.task
    return model
