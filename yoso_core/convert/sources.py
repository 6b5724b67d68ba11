"""Reading sources: checkpoint files and directories; each source converted to YOSO names and fields."""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

import torch

from .keymaps import (
    BERT_RULES,
    ORIGINAL_ENCODERS_RULES,
    ORIGINAL_TRANSFORMER_RULES,
    ROBERTA_HEADS,
    ROBERTA_RULES,
    _layer_indices,
    _names,
    apply_key_map,
)
from .options import CHECKPOINT_SUFFIXES, DTYPES, POSITION_OFFSET, ConvertError, ConvertOptions, ConvertReport


def load_torch_checkpoint(path: Path) -> dict[str, torch.Tensor]:
    """A state dict from a torch checkpoint file, unwrapping ``model_state_dict`` / ``state_dict``."""
    try:
        obj = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as exc:
        raise ConvertError(
            f"cannot read {path} as a torch checkpoint: {type(exc).__name__}: "
            f"{str(exc).splitlines()[0] if str(exc) else ''}"
        ) from exc
    for key in ("model_state_dict", "state_dict", "model"):
        if isinstance(obj, dict) and isinstance(obj.get(key), dict):
            obj = obj[key]
            break
    if not isinstance(obj, dict) or not all(isinstance(v, torch.Tensor) for v in obj.values()):
        raise ConvertError(
            f"{path} holds no state dict of tensors (looked at the top level and under 'model_state_dict')"
        )
    return dict(obj)


def _original_file(src: Path) -> Path:
    if src.is_file():
        return src
    if src.is_dir():
        files = sorted(p for p in src.iterdir() if p.suffix in CHECKPOINT_SUFFIXES)
        if len(files) == 1:
            return files[0]
        raise ConvertError(
            f"{src} holds {len(files)} checkpoint files ({_names([p.name for p in files])}); "
            "give the checkpoint file itself as SRC"
        )
    raise ConvertError(f"SRC {src} does not exist; give the original checkpoint file")


def _resolve_dir(src: str) -> Path:
    """A local directory for ``src``: itself, or a hub snapshot when it names a hub model."""
    path = Path(src)
    if path.is_dir():
        return path
    if path.exists():
        raise ConvertError(f"SRC {src} is a file; --from roberta|bert|transformers takes a model directory")
    try:
        from huggingface_hub import snapshot_download

        return Path(
            snapshot_download(src, allow_patterns=["*.json", "*.safetensors", "*.bin", "*.txt", "*.model"])
        )
    except Exception as exc:
        raise ConvertError(
            f"SRC {src} is not a directory and could not be fetched from the model hub "
            f"({type(exc).__name__}); give a local model directory"
        ) from exc


def load_hf_state_dict(directory: Path) -> dict[str, torch.Tensor]:
    """All tensors of a transformers checkpoint directory: safetensors or .bin, single or sharded."""
    from safetensors.torch import load_file

    for index_name, single in (
        ("model.safetensors.index.json", "model.safetensors"),
        ("pytorch_model.bin.index.json", "pytorch_model.bin"),
    ):
        index = directory / index_name
        if index.is_file():
            shards = sorted(set(json.loads(index.read_text())["weight_map"].values()))
            state: dict[str, torch.Tensor] = {}
            for shard in shards:
                state.update(_read_weights(directory / shard, load_file))
            return state
        if (directory / single).is_file():
            return _read_weights(directory / single, load_file)
    raise ConvertError(
        f"{directory} has no model.safetensors or pytorch_model.bin; is it a transformers model directory?"
    )


def _read_weights(path: Path, load_file) -> dict[str, torch.Tensor]:
    from ..saved import damaged_weights

    if path.suffix == ".safetensors":
        try:
            return load_file(str(path))
        except Exception as exc:  # SafetensorError (truncated, empty), OSError
            raise ConvertError(damaged_weights(path.parent, exc, flag="SRC")) from None
    return load_torch_checkpoint(path)


def _read_config(directory: Path) -> dict[str, Any]:
    path = directory / "config.json"
    if not path.is_file():
        raise ConvertError(f"{directory} has no config.json; is it a transformers model directory?")
    return json.loads(path.read_text())


# ---------------------------------------------------------------------------------------------
# Per-source conversion to (state in YOSO names, YosoConfig fields)


_COPIED_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "hidden_act",
    "hidden_dropout_prob",
    "attention_probs_dropout_prob",
    "type_vocab_size",
    "initializer_range",
    "layer_norm_eps",
    "pad_token_id",
    "bos_token_id",
    "eos_token_id",
)


def _from_original(src: Path, opts: ConvertOptions, report: ConvertReport):
    path = _original_file(src)
    raw = load_torch_checkpoint(path)
    raw = {k.removeprefix("module."): v for k, v in raw.items()}  # saved from DataParallel
    if not any(k.startswith("model.") for k in raw):
        raw = {(k if k.split(".")[0] in ("mlm", "sen_class") else "model." + k): v for k, v in raw.items()}
    if any(k.startswith("model.backbone.backbone.encoders.") for k in raw):
        rules, layout = ORIGINAL_ENCODERS_RULES, "backbone.backbone.encoders.{i} (the authors' repository)"
    elif any(re.match(r"model\.transformer_\d+\.", k) for k in raw):
        rules, layout = ORIGINAL_TRANSFORMER_RULES, "transformer_{i} (transformers' old conversion script)"
    else:
        raise ConvertError(
            f"{path} has neither 'backbone.backbone.encoders.{{i}}.' nor 'transformer_{{i}}.' keys; "
            f"its keys start {_names(list(raw), 5)}"
        )
    report.notes.append(f"original layout: {layout}")
    state, report.dropped = apply_key_map(raw, rules)

    fields: dict[str, Any] = {}
    need = [
        "yoso.embeddings.word_embeddings.weight",
        "yoso.embeddings.position_embeddings.weight",
        "yoso.embeddings.token_type_embeddings.weight",
        "yoso.encoder.layer.0.intermediate.dense.weight",
    ]
    absent = [k for k in need if k not in state]
    if absent:
        raise ConvertError(f"the checkpoint lacks tensors the configuration is read from: {_names(absent)}")
    fields["vocab_size"], fields["hidden_size"] = state[need[0]].shape
    fields["max_position_embeddings"] = state[need[1]].shape[0] - POSITION_OFFSET
    fields["type_vocab_size"] = state[need[2]].shape[0]
    fields["intermediate_size"] = state[need[3]].shape[0]
    layers = _layer_indices(state)
    if layers != list(range(len(layers))):
        raise ConvertError(f"layer indices are not 0..{len(layers) - 1}: {layers}")
    fields["num_hidden_layers"] = len(layers)
    conv = state.get("yoso.encoder.layer.0.attention.self.conv.weight")
    heads = opts.num_attention_heads
    if conv is not None:  # (heads, 1, window, 1)
        if heads is not None and heads != conv.shape[0]:
            raise ConvertError(
                f"--num-attention-heads {heads} disagrees with the checkpoint's convolution, "
                f"which has {conv.shape[0]} heads"
            )
        heads = conv.shape[0]
        fields["conv_window"] = conv.shape[2]
    if heads is None:
        raise ConvertError(
            "the head count of an original checkpoint without YOSO-C convolution cannot be read "
            "from its tensors; pass --num-attention-heads N (the 'num_head' of its config)"
        )
    if fields["hidden_size"] % heads:
        raise ConvertError(
            f"--num-attention-heads {heads} does not divide the checkpoint's hidden size "
            f"{fields['hidden_size']}; give the 'num_head' of its config"
        )
    fields["num_attention_heads"] = heads
    report.notes.append("config read from the tensors: " + ", ".join(f"{k}={v}" for k, v in fields.items()))
    fields["layer_norm_eps"] = 1e-5  # the original code uses nn.LayerNorm's default (and nn.GELU)
    fields["hidden_act"] = "gelu"
    arch = "YosoForMaskedLM" if "cls.predictions.transform.dense.weight" in state else "YosoModel"
    return state, fields, arch


def _from_softmax(src: str, opts: ConvertOptions, report: ConvertReport):
    directory = _resolve_dir(src)
    config = _read_config(directory)
    kind = opts.source
    if config.get("model_type") != kind:
        raise ConvertError(
            f"--from {kind} needs a {kind} checkpoint, but {src}'s config.json has model_type "
            f"{config.get('model_type')!r}; pick the matching --from"
        )
    if config.get("position_embedding_type", "absolute") != "absolute":
        raise ConvertError(
            f"{src} uses {config['position_embedding_type']!r} position embeddings; only "
            "absolute ones convert to YOSO"
        )
    raw = load_hf_state_dict(directory)
    prefix = kind + "."
    if not any(k.startswith(prefix) for k in raw):  # a bare RobertaModel / BertModel
        raw = {prefix + k: v for k, v in raw.items()}
    head_arch, head_rules = None, []
    if kind == "roberta":
        architecture = (config.get("architectures") or [""])[0]
        head_arch, head_rules = ROBERTA_HEADS.get(architecture, (None, []))
    # Head rules first: the first matching rule wins, and the generic rules drop the pooler.
    rules = head_rules + (ROBERTA_RULES if kind == "roberta" else BERT_RULES)
    state, report.dropped = apply_key_map(raw, rules)
    fields = {k: config[k] for k in _COPIED_FIELDS if k in config}
    if head_arch not in (None, "YosoForMaskedLM"):
        fields.update({k: config[k] for k in ("id2label", "label2id", "problem_type") if k in config})
        if head_arch == "YosoForMultipleChoice":
            report.notes.append("multiple-choice pooler (tanh) copied to pre_classifier (ReLU): a warm start")
    positions = state.get("yoso.embeddings.position_embeddings.weight")
    if positions is None:
        raise ConvertError(f"{src} has no position embedding table")
    if kind == "roberta":
        # RoBERTa's ids start at 2 like YOSO's: the table carries over as is.
        fields["max_position_embeddings"] = positions.shape[0] - POSITION_OFFSET
    else:
        # BERT's ids start at 0: shift its rows up by two; rows 0-1 (never used by YOSO) are zero.
        n, hidden = positions.shape
        shifted = positions.new_zeros(n + POSITION_OFFSET, hidden)  # (positions + 2, hidden)
        shifted[POSITION_OFFSET:] = positions
        state["yoso.embeddings.position_embeddings.weight"] = shifted
        fields["max_position_embeddings"] = n
        report.notes.append("BERT position rows 0.. moved to rows 2.. (YOSO's ids start at 2)")
    report.notes.append(
        f"attention swapped: softmax -> YOSO; embeddings, layers and heads copied from {kind}"
    )
    if head_arch is not None and head_arch != "YosoForMaskedLM":
        return state, fields, head_arch
    has_mlm = "cls.predictions.transform.dense.weight" in state
    return state, fields, "YosoForMaskedLM" if has_mlm else "YosoModel"


def _from_transformers(src: str, opts: ConvertOptions, report: ConvertReport):
    import transformers

    from .. import modeling

    try:
        config = transformers.AutoConfig.from_pretrained(src)
    except Exception as exc:
        raise ConvertError(
            f"cannot read a transformers config from {src}: {type(exc).__name__}; give a "
            "transformers YOSO directory or hub name"
        ) from exc
    if config.model_type != "yoso":
        raise ConvertError(
            f"--from transformers needs a YOSO checkpoint, but {src} has model_type "
            f"{config.model_type!r}; use --from roberta or --from bert for softmax encoders"
        )
    arch = (config.architectures or ["YosoModel"])[0]
    if not hasattr(modeling, arch) or not hasattr(transformers, arch):
        raise ConvertError(
            f"architecture {arch!r} of {src} has no counterpart here; expected one of "
            f"YosoModel, {', '.join(c.__name__ for c in modeling.TASK_MODELS.values())}"
        )
    from ..saved import damaged_weights

    try:
        theirs, info = getattr(transformers, arch).from_pretrained(src, output_loading_info=True)
    except Exception as exc:  # no weights, a truncated or empty file, a size that does not fit
        raise ConvertError(damaged_weights(src, exc, flag="SRC")) from None
    problems = {
        k: v for k, v in info.items() if k in ("missing_keys", "unexpected_keys", "mismatched_keys") and v
    }
    if problems:
        listed = "; ".join(
            f"{k.replace('_', ' ')}: {_names([str(x) for x in v])}" for k, v in problems.items()
        )
        raise ConvertError(
            f"transformers could not load {src} completely ({listed}); the checkpoint is damaged "
            "or not a YOSO checkpoint"
        )
    loaded_dtype = _dtype_name({p.dtype for p in theirs.parameters()})
    theirs = theirs.float().eval()  # compared in float32; the source dtype is kept for the result
    state = dict(theirs.state_dict())
    if arch == "YosoModel":  # one naming for every source: the encoder under "yoso."
        state = {f"yoso.{k}": v for k, v in state.items()}
    fields = {
        k: v
        for k, v in config.to_dict().items()
        if k
        not in (
            "architectures",
            "transformers_version",
            "model_type",
            "_name_or_path",
            "dtype",
            "torch_dtype",
        )
    }
    return state, fields, arch, theirs, loaded_dtype


def _dtype_name(dtypes: set[torch.dtype]) -> str | None:
    """The option name of the one floating dtype in ``dtypes``, None when mixed or unknown."""
    return next((name for name, d in DTYPES.items() if dtypes == {d}), None)
