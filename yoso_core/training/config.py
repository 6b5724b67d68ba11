"""TrainConfig: every option of `yoso pretrain` / `yoso finetune`, and how they are merged.

Configuration flows one way: dataclass defaults, then a YAML ``--config`` file, then the command
line (options left out on the command line are ``None`` and change nothing). The merged result is
validated once, with messages that name the flag, and saved as ``OUTPUT_DIR/config.yaml`` so a run
can be repeated with ``--config OUTPUT_DIR/config.yaml``.
"""

from __future__ import annotations

import dataclasses
import json
import math
import os
import typing
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from .._io import atomic_write_text
from ..config import hash_setting_error
from ..data.schema import TASKS
from ..devices import DEVICES
from ..errors import ConfigError
from ..sizes import MODEL_SIZES

ATTENTIONS = ("sampled", "expectation", "softmax")
FINETUNE_TASKS = TASKS[1:]
PRECISIONS = ("fp32", "bf16")


@dataclass
class TrainConfig:
    """Every training option, with its default; field names equal the long flags with ``_`` for ``-``."""

    task: str = "mlm"
    # Model: a size name (tiny|small|base, trained from scratch) or a transformers-format directory.
    model: str = "small"
    # Data: local files, a hub dataset, or (neither) the task's built-in generated set.
    train_file: str | None = None
    validation_file: str | None = None
    dataset: str | None = None
    dataset_config: str | None = None
    num_train: int | None = None
    num_validation: int | None = None
    # Tokenizer: a directory or hub name; None trains a byte-level BPE on the training text
    # (from scratch) or reuses the model directory's tokenizer (fine-tuning).
    tokenizer: str | None = None
    vocab_size: int = 8000
    seq_len: int = 512
    stride: int | None = None  # QA window overlap in tokens; None = seq_len // 4
    mlm_probability: float = 0.15
    # Output and length of the run.
    output_dir: str | None = None  # None = runs/<task>
    max_steps: int = 1000
    batch_size: int = 8  # per process; the global batch is batch_size * processes * accumulation
    eval_batch_size: int | None = None  # None = batch_size
    gradient_accumulation_steps: int = 1
    # Optimiser: AdamW, linear warm-up then linear decay to zero at max_steps.
    learning_rate: float = 1e-4
    warmup_steps: int | None = None  # None = 10% of max_steps
    weight_decay: float = 0.01
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0  # 0 disables clipping
    # Evaluation, logging and checkpoints (0 = only at the end).
    eval_every: int = 200
    save_every: int = 500
    log_every: int = 10
    keep_checkpoints: int | None = None  # None keeps every checkpoint
    seed: int = 0
    precision: str = "fp32"
    # Recompute each layer's activations in the backward (transformers' mechanism): memory for length.
    gradient_checkpointing: bool = False
    device: str = "auto"
    resume: str | None = None  # a checkpoint directory, or "auto" for the newest complete one
    # Model fields (from scratch; on a directory they override its config).
    dropout: float | None = None  # hidden and attention dropout; None = the model's own
    # sampled | expectation (YOSO-E) | softmax (the RoBERTa baseline); None = the model's own
    # (YOSO-E from scratch).
    attention: str | None = None
    num_hash: int | None = None
    hash_code_len: int | None = None  # None = the model's own; from scratch auto: log2(seq_len) in [8, 16]
    conv_window: int | None = None

    def resolved_output_dir(self) -> Path:
        """The output directory (``runs/<task>`` when none was given)."""
        return Path(self.output_dir if self.output_dir is not None else os.path.join("runs", self.task))

    def resolved_warmup_steps(self) -> int:
        """Warm-up steps (10% of ``max_steps`` unless given)."""
        return self.warmup_steps if self.warmup_steps is not None else self.max_steps // 10

    def to_dict(self) -> dict[str, Any]:
        """The options as a plain dict (what ``config.yaml`` holds)."""
        return dataclasses.asdict(self)


def _fields() -> dict[str, Any]:
    hints = typing.get_type_hints(TrainConfig)
    return {f.name: hints[f.name] for f in dataclasses.fields(TrainConfig)}


def flag(name: str) -> str:
    """The command-line flag of a field: ``max_steps`` -> ``--max-steps``."""
    return "--" + name.replace("_", "-")


def _number(value: Any) -> float | None:
    """A finite number written as a string (``"1e-3"``, which YAML 1.1 reads as text), else None."""
    if not isinstance(value, str):
        return None
    try:
        number = float(value.strip().replace("_", ""))
    except ValueError:
        return None
    return number if math.isfinite(number) else None


def _check_type(name: str, value: Any, hint: Any, source: str) -> Any:
    """Return ``value`` converted to the field's type, or raise ConfigError naming the key."""
    if name == "hash_code_len":
        return _hash_code_len(value, source)
    args = typing.get_args(hint)
    optional = type(None) in args
    base = next((a for a in args if a is not type(None)), hint) if args else hint
    if value is None:
        if optional:
            return None
        raise ConfigError(f"{source}: `{name}` must not be empty (null)")
    if base is bool:
        if isinstance(value, bool):
            return value
    elif base is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
        number = _number(value)
        if number is not None and number.is_integer():
            return int(number)
    elif base is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
        number = _number(value)
        if number is not None:
            return number
    elif base is str:
        if isinstance(value, (str, int, float)) and not isinstance(value, bool):
            return str(value)
    else:
        return value
    raise ConfigError(f"{source}: `{name}` must be {base.__name__}, got {value!r}")


def read_yaml(path: str | os.PathLike) -> dict[str, Any]:
    """The options of a YAML config file; keys may use ``-`` or ``_``; unknown keys are an error."""
    path = Path(path)
    if path.is_dir():
        raise ConfigError(f"--config: {str(path)!r} is a directory, not a file; give the YAML file in it")
    if not path.is_file():
        raise ConfigError(f"--config: file {str(path)!r} does not exist")
    try:
        data = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise ConfigError(f"--config: {path} is not valid YAML: {str(exc).splitlines()[0]}") from None
    if data is None:
        return {}
    if not isinstance(data, dict):
        raise ConfigError(f"--config: {path} must hold a mapping of option: value, got {type(data).__name__}")
    fields = _fields()
    out: dict[str, Any] = {}
    for key, value in data.items():
        name = str(key).replace("-", "_")
        if name in _ALIASES:
            name, value = _alias(name, value, f"{path}: `{key}`")
        if name not in fields:
            raise ConfigError(
                f"--config: unknown key {key!r} in {path}; valid keys are: {', '.join(sorted(fields))}"
            )
        out[name] = _check_type(name, value, fields[name], str(path))
    return out


def merge_config(
    yaml_path: str | os.PathLike | None = None,
    overrides: dict[str, Any] | None = None,
    *,
    tasks: Sequence[str] | None = None,
    **fixed: Any,
) -> TrainConfig:
    """Defaults, then the YAML file, then ``overrides`` (None values ignored), then ``fixed``; validated.

    ``tasks``, when given, are the tasks the caller serves: the YAML file or ``overrides`` must
    then name one of them (``yoso finetune`` passes ``FINETUNE_TASKS``).
    """
    fields = _fields()
    values: dict[str, Any] = {}
    if yaml_path is not None:
        values.update(read_yaml(yaml_path))
    for name, value in (overrides or {}).items():
        if name in _ALIASES:
            if value is None:
                continue
            name, value = _alias(name, value, flag(name))
            if (overrides or {}).get(name) not in (None, value):
                raise ConfigError(f"--attention {overrides[name]} contradicts the older flag it replaces")
        if name not in fields:
            raise ConfigError(f"unknown option {flag(name)}")
        if value is not None:
            values[name] = _check_type(name, value, fields[name], flag(name))
    if tasks is not None:
        _check_task_given(values.get("task"), tasks)
    for name, value in fixed.items():
        if name in values and values[name] != value:
            raise ConfigError(
                f"`{name}: {values[name]}` cannot be used here (this command needs {name} {value})"
            )
        values[name] = value
    if "seq_len" not in values:
        default = _model_length(values.get("model"))
        if default is not None:
            values["seq_len"] = default
    config = TrainConfig(**values)
    validate(config)
    return config


# Older option names kept working: ``use_expectation: true|false`` (``--use-expectation/--sampled``).
_ALIASES = ("use_expectation",)


def _alias(name: str, value: Any, source: str) -> tuple[str, Any]:
    """(new name, new value) of a deprecated option; ConfigError for a value of the wrong type."""
    if not isinstance(value, bool):
        raise ConfigError(
            f"{source}: `use_expectation` must be bool, got {value!r} (use `attention:` instead)"
        )
    return "attention", "expectation" if value else "sampled"


def _hash_code_len(value: Any, source: str) -> int | None:
    """``hash_code_len``: an integer, or ``auto`` (None: log2(seq_len) for a new model)."""
    if value is None or (isinstance(value, str) and value.strip().lower() == "auto"):
        return None
    if isinstance(value, str) and value.strip().isdigit():
        return int(value)
    if isinstance(value, int) and not isinstance(value, bool):
        return value
    raise ConfigError(f"{source}: hash_code_len must be an integer or 'auto', got {value!r}")


def _check_task_given(task: str | None, tasks: Sequence[str]) -> None:
    """ConfigError unless ``task`` is one of ``tasks`` (it has no default here)."""
    if task is None:
        raise ConfigError(f"--task is required: one of {', '.join(tasks)}")
    if task not in tasks:
        hint = "" if "mlm" in tasks else " (use `yoso pretrain` for mlm)"
        raise ConfigError(f"--task must be one of {', '.join(tasks)}{hint}, got {task!r}")


def _model_length(model: Any) -> int | None:
    """A model directory's ``max_position_embeddings``: the default ``seq_len`` when fine-tuning it."""
    path = Path(str(model)) / "config.json" if model is not None else None
    if path is None or not path.is_file():
        return None
    try:
        saved = json.loads(path.read_text())
        length = saved.get("max_position_embeddings")
    except (OSError, ValueError, AttributeError):
        return None  # validate() and the model loader report unreadable configs
    if saved.get("model_type") == "roberta" and isinstance(length, int):
        length -= 2  # RoBERTa's table holds two offset rows (position ids start at 2)
    return length if isinstance(length, int) and length >= 8 else None


def _positive(config: TrainConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and value < 1:
            raise ConfigError(f"{flag(name)} must be a positive integer, got {value}")


def _non_negative(config: TrainConfig, *names: str) -> None:
    for name in names:
        value = getattr(config, name)
        if value is not None and value < 0:
            raise ConfigError(f"{flag(name)} must be >= 0, got {value}")


def _cuda_available() -> bool:
    """Whether torch sees a CUDA device."""
    import torch

    return torch.cuda.is_available()


def validate(config: TrainConfig) -> None:
    """Raise ConfigError naming the flag for any invalid option (nothing heavy: no data, no model)."""
    if config.task not in TASKS:
        raise ConfigError(f"--task must be one of {', '.join(TASKS)}, got {config.task!r}")
    for name in _fields():  # nan and inf slip through the range checks below (nan > 0 is False too)
        value = getattr(config, name)
        if isinstance(value, float) and not math.isfinite(value):
            raise ConfigError(f"{flag(name)} must be a finite number, got {value}")
    if config.model not in MODEL_SIZES and not (Path(config.model) / "config.json").is_file():
        raise ConfigError(
            f"--model {config.model!r} is neither a model size ({', '.join(MODEL_SIZES)}) nor a directory "
            "holding a config.json; give a size to train from scratch or a saved model directory"
        )
    _positive(
        config,
        "seq_len",
        "max_steps",
        "batch_size",
        "eval_batch_size",
        "gradient_accumulation_steps",
        "vocab_size",
        "num_train",
        "num_validation",
        "log_every",
        "keep_checkpoints",
        "stride",
    )
    _non_negative(config, "warmup_steps", "eval_every", "save_every", "seed", "weight_decay", "max_grad_norm")
    if config.seq_len < 8:
        raise ConfigError(f"--seq-len must be at least 8 tokens, got {config.seq_len}")
    if not config.learning_rate > 0:
        raise ConfigError(f"--learning-rate must be > 0, got {config.learning_rate}")
    if config.attention is not None and config.attention not in ATTENTIONS:
        raise ConfigError(f"--attention must be one of {', '.join(ATTENTIONS)}, got {config.attention!r}")
    if config.precision not in PRECISIONS:
        raise ConfigError(f"--precision must be one of {', '.join(PRECISIONS)}, got {config.precision!r}")
    if config.device not in DEVICES:
        raise ConfigError(f"--device must be one of {', '.join(DEVICES)}, got {config.device!r}")
    if config.device == "cuda" and not _cuda_available():
        raise ConfigError("--device cuda: no CUDA device is available here; use --device cpu or auto")
    if not 0.0 < config.mlm_probability < 1.0:
        raise ConfigError(f"--mlm-probability must be in (0, 1), got {config.mlm_probability}")
    if config.dropout is not None and not 0.0 <= config.dropout < 1.0:
        raise ConfigError(f"--dropout must be in [0, 1), got {config.dropout}")
    for name in ("adam_beta1", "adam_beta2"):
        if not 0.0 <= getattr(config, name) < 1.0:
            raise ConfigError(f"{flag(name)} must be in [0, 1), got {getattr(config, name)}")
    for name in ("num_hash", "hash_code_len"):
        value = getattr(config, name)
        if value is not None and (problem := hash_setting_error(name, value, label=flag(name), allowed="in")):
            raise ConfigError(problem)
    if config.conv_window is not None and (config.conv_window < 1 or config.conv_window % 2 == 0):
        raise ConfigError(
            f"--conv-window must be an odd positive integer (1, 3, 5, ...), got {config.conv_window}"
        )
    for name in ("train_file", "validation_file"):
        path = getattr(config, name)
        if path is not None and Path(path).is_dir():
            raise ConfigError(f"{flag(name)}: {path!r} is a directory, not a file; give a data file in it")
        if path is not None and not Path(path).is_file():
            raise ConfigError(f"{flag(name)}: file {path!r} does not exist")
    if config.tokenizer is not None:
        _check_tokenizer(config.tokenizer)
    if config.dataset is not None and config.train_file is not None:
        raise ConfigError("--dataset and --train-file exclude each other; give one source of training data")
    if config.dataset_config is not None and config.dataset is None:
        raise ConfigError("--dataset-config needs --dataset")
    if config.resume is not None and config.resume != "auto":
        if not (Path(config.resume) / "trainer_state.json").is_file():
            raise ConfigError(
                f"--resume {config.resume!r} is not a checkpoint directory (no trainer_state.json); give "
                "OUTPUT_DIR/checkpoints/step-N or 'auto'"
            )


def looks_local(name: str) -> bool:
    """Whether ``name`` can only be a local path, never a hub name (``org/name``): absolute, ``./``,
    ``~``, more than one ``/``, or its first part an existing local folder."""
    parts = name.replace(os.sep, "/").split("/")
    return (
        name.startswith(("/", ".", "~"))
        or len(parts) > 2
        or (len(parts) == 2 and Path(parts[0]).is_dir())
        or "\\" in name
    )


def _check_tokenizer(name: str) -> None:
    """ConfigError, at once, for a ``--tokenizer`` path that is not there (no 50 s of hub retries)."""
    from ..saved import has_tokenizer

    path = Path(name).expanduser()
    if path.is_dir():
        if not has_tokenizer(path):
            raise ConfigError(
                f"--tokenizer {name!r} is a directory without tokenizer files (tokenizer.json, vocab.json, "
                "...); give the directory a tokenizer was saved to"
            )
        return
    if path.exists():
        raise ConfigError(f"--tokenizer {name!r} is a file; give the directory a tokenizer was saved to")
    if looks_local(name):
        raise ConfigError(f"--tokenizer {name!r} does not exist; give a tokenizer directory (or a hub name)")
    if os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "true", "yes"):
        raise ConfigError(
            f"--tokenizer {name!r} is not a local directory, and the hub is off (HF_HUB_OFFLINE is set); "
            "give a tokenizer directory"
        )


def save_config(config: TrainConfig, path: str | os.PathLike) -> None:
    """Write the effective configuration as YAML, atomically."""
    atomic_write_text(path, yaml.safe_dump(config.to_dict(), sort_keys=False))
