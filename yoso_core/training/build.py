"""Model, tokenizer and labels of a run: from scratch (a size name) or from a saved directory.

- From scratch (``--model tiny|small|base``): the tokenizer is ``--tokenizer`` or a byte-level BPE
  trained on the training text; the model gets ``vocab_size = len(tokenizer)`` and
  ``max_position_embeddings = seq_len``.
- From a directory (ours or transformers'): its tokenizer unless ``--tokenizer`` is given; the
  maximum length is its ``max_position_embeddings``; ``seq_len`` must fit in it. When the directory
  already holds a model of the same task, its label order is kept.

The task and labels are stored in the saved config (``task``, ``id2label``, ``label2id``,
``architectures``) so ``yoso predict`` knows what a directory does.

``--attention`` picks the model family: ``sampled`` / ``expectation`` build YOSO models (sampled
YOSO or YOSO-E); ``softmax`` builds the same architecture with softmax attention, as transformers'
RoBERTa classes with SDPA (YOSO's layout is RoBERTa's: post-LN, position ids from 2), so its
``final`` directory is a RoBERTa model that ``yoso predict`` serves and ``yoso convert --from
roberta`` turns into a YOSO one. Its position table has ``seq_len + 2`` rows, as RoBERTa's has.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from ..saved import (
    SOFTMAX_MODELS,
    has_tokenizer,
    is_softmax,
    load_pretrained,
    load_saved_config,
    max_length_of,
    saved_model_type,
    task_model_class,
    task_of,
)
from ..sizes import MODEL_SIZES
from .config import ConfigError, TrainConfig


def from_scratch(config: TrainConfig) -> bool:
    """True when ``--model`` names a size rather than a directory."""
    return config.model in MODEL_SIZES


def model_max_length(config: TrainConfig) -> int:
    """The tokenizer's maximum length: the model's ``max_position_embeddings`` (``seq_len`` from scratch)."""
    if from_scratch(config):
        return config.seq_len
    limit = max_length_of(load_saved_config(config.model))
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
            where = (
                ""
                if Path(config.tokenizer).is_dir()
                else " (not a local directory, nor on the hub: offline?)"
            )
            reason = " ".join(str(exc).split())[:300]
            raise ConfigError(f"--tokenizer {config.tokenizer!r} cannot be loaded{where}: {reason}") from None
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


def saved_labels(saved: Any, task: str) -> list[str] | None:
    """The label names of a saved model's ``task`` head in id order (from its config); None when it
    has no head for ``task`` (another task's, or one without labels)."""
    if task_of(saved) != task or not getattr(saved, "label2id", None):
        return None
    return [saved.id2label[i] for i in range(len(saved.id2label))]


def resolve_labels(config: TrainConfig, records: Sequence[dict]) -> list[str] | None:
    """Label names of the run: the data's, in the saved model's order when it serves the same task."""
    from ..data import label_names

    names = label_names(config.task, records)
    if names is None or from_scratch(config):
        return names
    known = saved_labels(load_saved_config(config.model), config.task)
    if known is None:
        return names
    unknown = sorted(set(names) - set(known))
    if unknown:
        raise ConfigError(
            f"labels {unknown} of the data are unknown to --model {config.model!r} (which knows {known}); "
            "fine-tune from its pretrained (mlm) checkpoint instead, or fix the data"
        )
    return known


_YOSO_FIELDS = ("num_hash", "hash_code_len", "conv_window")


def _model_overrides(config: TrainConfig) -> dict[str, Any]:
    out: dict[str, Any] = {}
    if config.dropout is not None:
        out["hidden_dropout_prob"] = config.dropout
        out["attention_probs_dropout_prob"] = config.dropout
    return out


def _yoso_overrides(config: TrainConfig) -> dict[str, Any]:
    """YOSO fields of the run (``--attention``, ``--num-hash``, ...); ``hash_code_len`` auto from scratch."""
    from ..sizes import auto_hash_code_len

    out: dict[str, Any] = {}
    if config.attention is not None:
        out["use_expectation"] = config.attention == "expectation"
    for name in _YOSO_FIELDS:
        if getattr(config, name) is not None:
            out[name] = getattr(config, name)
    if from_scratch(config):
        out.setdefault("use_expectation", True)
        out.setdefault("hash_code_len", auto_hash_code_len(config.seq_len))
    return out


def _check_attention(config: TrainConfig) -> None:
    """ConfigError when ``--attention`` does not fit ``--model`` or YOSO options come with softmax."""
    if config.attention == "softmax":
        given = [name for name in _YOSO_FIELDS if getattr(config, name) is not None]
        if given:
            flags = ", ".join("--" + name.replace("_", "-") for name in given)
            raise ConfigError(
                f"{flags} set YOSO attention and mean nothing with --attention softmax; drop them or "
                "choose --attention sampled|expectation"
            )
    if from_scratch(config):
        return
    softmax_dir = saved_model_type(config.model) == "roberta"
    if softmax_dir and config.attention not in (None, "softmax"):
        raise ConfigError(
            f"--model {config.model!r} holds a softmax (RoBERTa) model; to train it with --attention "
            f"{config.attention}, convert it first: `yoso convert {config.model} DST --from roberta`"
        )
    if not softmax_dir and config.attention == "softmax":
        raise ConfigError(
            f"--model {config.model!r} holds a YOSO model; --attention softmax trains a RoBERTa model, from "
            "scratch (--model tiny|small|base) or from a RoBERTa directory"
        )
    if softmax_dir:
        given = [name for name in _YOSO_FIELDS if getattr(config, name) is not None]
        if given:
            raise ConfigError(
                f"--{given[0].replace('_', '-')} sets YOSO attention, but --model {config.model!r} is a "
                "softmax (RoBERTa) model; convert it with `yoso convert --from roberta` first"
            )


def _special_ids(tokenizer) -> dict[str, Any]:
    return {
        "pad_token_id": tokenizer.pad_token_id,
        "bos_token_id": tokenizer.bos_token_id
        if tokenizer.bos_token_id is not None
        else tokenizer.cls_token_id,
        "eos_token_id": tokenizer.eos_token_id
        if tokenizer.eos_token_id is not None
        else tokenizer.sep_token_id,
    }


def build_model(config: TrainConfig, tokenizer, labels: list[str] | None):
    """The task model: initialised from the seed (from scratch) or loaded from ``--model``.

    YOSO (``--attention sampled|expectation``) or the softmax baseline (``--attention softmax``:
    transformers' RoBERTa class of the task, SDPA attention, same sizes, vocabulary and length).
    """
    from ..modeling import TASK_MODELS, enable_gradient_checkpointing
    from ..sizes import size_config, softmax_config

    _check_attention(config)
    fields = _model_overrides(config)
    if labels is not None:
        fields["id2label"] = dict(enumerate(labels))
        fields["label2id"] = {name: i for i, name in enumerate(labels)}
        fields["num_labels"] = len(labels)
    softmax = config.attention == "softmax" or (
        not from_scratch(config) and saved_model_type(config.model) == "roberta"
    )
    if from_scratch(config):
        sizes = dict(
            vocab_size=len(tokenizer), max_position_embeddings=config.seq_len, **_special_ids(tokenizer)
        )
        if softmax:
            import transformers

            model_config = softmax_config(config.model, **sizes, **fields)
            model_class = getattr(transformers, SOFTMAX_MODELS[config.task])
            model = model_class._from_config(model_config, attn_implementation="sdpa")
        else:
            model_config = size_config(config.model, **sizes, **fields, **_yoso_overrides(config))
            model = TASK_MODELS[config.task](model_config)
    else:
        saved = load_saved_config(config.model)
        if len(tokenizer) > saved.vocab_size:
            raise ConfigError(
                f"the tokenizer has {len(tokenizer)} tokens but --model {config.model!r} only "
                f"{saved.vocab_size} embeddings; use the model's own tokenizer"
            )
        model_class = task_model_class(saved, config.task)
        if softmax:
            fields["attn_implementation"] = "sdpa"
        else:
            fields.update(_yoso_overrides(config))
        # a directory of another task (an mlm checkpoint for a classifier) gets a new head; nothing else
        # may be missing from its weights
        new_head = task_of(saved) != config.task
        model = load_pretrained(model_class, config.model, new_head=new_head, **fields)
    model.config.task = config.task
    if config.gradient_checkpointing:
        enable_gradient_checkpointing(model)
    return model


def effective_config(config: TrainConfig, model) -> TrainConfig:
    """``config`` with the attention and ``hash_code_len`` the built model really uses (what
    ``config.yaml`` records: ``auto`` and "the model's own" resolved)."""
    import dataclasses

    if is_softmax(model.config):
        return dataclasses.replace(config, attention="softmax")
    attention = "expectation" if model.config.use_expectation else "sampled"
    return dataclasses.replace(config, attention=attention, hash_code_len=int(model.config.hash_code_len))
