"""Checkpoint conversion: bring YOSO and softmax-encoder checkpoints into this package's format.

Sources (``--from``):

- ``original``: a torch checkpoint of the authors' training code (the state dict, possibly nested
  under ``"model_state_dict"``), in either of its two key layouts (``ORIGINAL_ENCODERS_RULES``,
  ``ORIGINAL_TRANSFORMER_RULES``). The tensors fix the vocabulary, hidden, intermediate and
  position sizes, the layer count and the token-type count; the head count is read from the
  YOSO-C convolution when there is one and must be given otherwise.
- ``roberta`` / ``bert``: warm-start from a softmax encoder (transformers' RobertaModel,
  RobertaForMaskedLM, BertModel, BertForMaskedLM, ...): same embeddings and layers, attention
  swapped for YOSO, YOSO fields from the options.
- ``transformers``: a transformers YOSO checkpoint (directory or hub name); the result is checked
  against transformers' own forward pass.

Every key map is a declarative table of ``(source key, target key)`` pairs, ``{}`` standing for the
layer index and ``None`` for a key that is dropped. Conversion fails, naming the keys, on any
source key no rule covers, any target key nothing provides, and any shape that does not fit.
The result is written into a temporary directory beside DST and renamed into place. ``--force``
replaces only what a conversion would have written: an empty directory or a model directory
(``config.json`` and weights), never one that holds SRC; a DST that is a symbolic link keeps its
link, and the directory it points to is replaced.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

SOURCES = ("original", "roberta", "bert", "transformers")
DTYPES = {"float32": torch.float32, "float16": torch.float16, "bfloat16": torch.bfloat16}
# Position ids of YOSO (and RoBERTa) start at 2: rows 0 and 1 of the table are never used.
POSITION_OFFSET = 2
TOKENIZER_FILES = (
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "vocab.json",
    "merges.txt",
    "vocab.txt",
    "added_tokens.json",
    "spiece.model",
    "sentencepiece.bpe.model",
)
CHECKPOINT_SUFFIXES = (".model", ".cp", ".pt", ".pth", ".bin", ".ckpt")
WEIGHT_FILES = (
    "model.safetensors",
    "model.safetensors.index.json",
    "pytorch_model.bin",
    "pytorch_model.bin.index.json",
)

Rules = list[tuple[str, str | None]]

# --- the authors' code: encoders under backbone.backbone.encoders.{i}, feed-forward ff.0 / ff.2 -----------
_ENC = "model.backbone.backbone.encoders.{}."
_TRF = "model.transformer_{}."
_OUT = "yoso.encoder.layer.{}."


def _wb(source: str, target: str | None) -> Rules:
    """The weight and bias rules of one linear or norm module."""
    return [(f"{source}.{p}", None if target is None else f"{target}.{p}") for p in ("weight", "bias")]


_ORIGINAL_SHARED: Rules = [
    ("model.embeddings.word_embeddings.weight", "yoso.embeddings.word_embeddings.weight"),
    ("model.embeddings.position_embeddings.weight", "yoso.embeddings.position_embeddings.weight"),
    ("model.embeddings.token_type_embeddings.weight", "yoso.embeddings.token_type_embeddings.weight"),
    *_wb("model.embeddings.norm", "yoso.embeddings.LayerNorm"),
    *_wb("model.pooler", None),
    *_wb("mlm.dense", "cls.predictions.transform.dense"),
    *_wb("mlm.norm", "cls.predictions.transform.LayerNorm"),
    *_wb("mlm.mlm_class", "cls.predictions.decoder"),
    *_wb("sen_class", None),
]


def _original_layer(prefix: str, ff_in: str, ff_out: str) -> Rules:
    return [
        *_wb(prefix + "mha.W_q", _OUT + "attention.self.query"),
        *_wb(prefix + "mha.W_k", _OUT + "attention.self.key"),
        *_wb(prefix + "mha.W_v", _OUT + "attention.self.value"),
        (prefix + "mha.attn.conv.weight", _OUT + "attention.self.conv.weight"),
        *_wb(prefix + "mha.ff", _OUT + "attention.output.dense"),
        *_wb(prefix + "norm1", _OUT + "attention.output.LayerNorm"),
        *_wb(prefix + ff_in, _OUT + "intermediate.dense"),
        *_wb(prefix + ff_out, _OUT + "output.dense"),
        *_wb(prefix + "norm2", _OUT + "output.LayerNorm"),
    ]


# The authors' public repository (mlpen/YOSO): Model.backbone (a wrapper) .backbone .encoders.
ORIGINAL_ENCODERS_RULES: Rules = _ORIGINAL_SHARED + _original_layer(_ENC, "ff.0", "ff.2")
# The layout transformers' old conversion script assumed: transformer_{i}, ff1 / ff2.
ORIGINAL_TRANSFORMER_RULES: Rules = _ORIGINAL_SHARED + _original_layer(_TRF, "ff1", "ff2")

# --- softmax encoders: BERT-style layers have YOSO's parameter names already ---------------------------
_LAYER_MODULES = (
    "attention.self.query",
    "attention.self.key",
    "attention.self.value",
    "attention.output.dense",
    "attention.output.LayerNorm",
    "intermediate.dense",
    "output.dense",
    "output.LayerNorm",
)


def _softmax_encoder_rules(prefix: str) -> Rules:
    rules: Rules = [
        (f"{prefix}.embeddings.word_embeddings.weight", "yoso.embeddings.word_embeddings.weight"),
        (f"{prefix}.embeddings.position_embeddings.weight", "yoso.embeddings.position_embeddings.weight"),
        (f"{prefix}.embeddings.token_type_embeddings.weight", "yoso.embeddings.token_type_embeddings.weight"),
        *_wb(f"{prefix}.embeddings.LayerNorm", "yoso.embeddings.LayerNorm"),
        (f"{prefix}.embeddings.position_ids", None),  # buffers some checkpoints saved
        (f"{prefix}.embeddings.token_type_ids", None),
        *_wb(f"{prefix}.pooler.dense", None),
    ]
    for module in _LAYER_MODULES:
        rules += _wb(f"{prefix}.encoder.layer.{{}}.{module}", f"yoso.encoder.layer.{{}}.{module}")
    return rules


ROBERTA_RULES: Rules = _softmax_encoder_rules("roberta") + [
    *_wb("lm_head.dense", "cls.predictions.transform.dense"),
    *_wb("lm_head.layer_norm", "cls.predictions.transform.LayerNorm"),
    *_wb("lm_head.decoder", "cls.predictions.decoder"),
    ("lm_head.bias", "cls.predictions.bias"),
]
# Task heads of transformers' RoBERTa classes and their YOSO counterparts (same layouts, same names
# but for multiple choice, whose pooler becomes YOSO's pre-classifier: tanh there, ReLU here).
ROBERTA_HEADS: dict[str, tuple[str, Rules]] = {
    "RobertaForMaskedLM": ("YosoForMaskedLM", []),
    "RobertaForSequenceClassification": (
        "YosoForSequenceClassification",
        [*_wb("classifier.dense", "classifier.dense"), *_wb("classifier.out_proj", "classifier.out_proj")],
    ),
    "RobertaForTokenClassification": ("YosoForTokenClassification", _wb("classifier", "classifier")),
    "RobertaForQuestionAnswering": ("YosoForQuestionAnswering", _wb("qa_outputs", "qa_outputs")),
    "RobertaForMultipleChoice": (
        "YosoForMultipleChoice",
        [*_wb("roberta.pooler.dense", "pre_classifier"), *_wb("classifier", "classifier")],
    ),
}
BERT_RULES: Rules = _softmax_encoder_rules("bert") + [
    *_wb("cls.predictions.transform.dense", "cls.predictions.transform.dense"),
    *_wb("cls.predictions.transform.LayerNorm", "cls.predictions.transform.LayerNorm"),
    *_wb("cls.predictions.decoder", "cls.predictions.decoder"),
    ("cls.predictions.bias", "cls.predictions.bias"),
    *_wb("cls.seq_relationship", None),  # next-sentence head of BertForPreTraining
]

# Target keys that may be absent from a source because they are tied to another key.
TIED = {
    "cls.predictions.decoder.weight": "yoso.embeddings.word_embeddings.weight",
    "cls.predictions.decoder.bias": "cls.predictions.bias",
    "cls.predictions.bias": "cls.predictions.decoder.bias",
}


class ConvertError(ValueError):
    """A conversion that cannot proceed; the message names the problem and the fix."""


@dataclass
class ConvertOptions:
    """What to convert and how; each field is the ``yoso convert`` option of the same name."""

    source: str = "transformers"
    max_position_embeddings: int | None = None
    use_expectation: bool | None = None
    num_hash: int | None = None
    hash_code_len: int | None = None
    conv_window: int | None = None
    num_attention_heads: int | None = None  # --from original, when the tensors do not tell
    dtype: str | None = None
    force: bool = False
    verify: bool = True


@dataclass
class ConvertReport:
    """What a conversion did, for the summary printed after it."""

    source: str
    src: str
    dst: str
    architecture: str = "YosoModel"
    mapped: int = 0
    dropped: list[str] = field(default_factory=list)
    initialised: list[str] = field(default_factory=list)
    config_changes: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    files: list[str] = field(default_factory=list)
    max_abs_diff: float | None = None

    def lines(self) -> list[str]:
        """A human summary, one fact per line."""
        out = [
            f"converted {self.source} checkpoint {self.src} -> {self.dst} ({self.architecture})",
            f"tensors mapped: {self.mapped}",
        ]
        if self.dropped:
            out.append(f"dropped ({len(self.dropped)}): {', '.join(self.dropped)}")
        if self.initialised:
            out.append(f"newly initialised ({len(self.initialised)}): {', '.join(self.initialised)}")
        out += [f"config: {change}" for change in self.config_changes]
        out += self.notes
        if self.max_abs_diff is not None:
            out.append(f"verified against transformers: max |logits difference| = {self.max_abs_diff:.2e}")
        out.append(f"files: {', '.join(self.files)}")
        return out


# ---------------------------------------------------------------------------------------------
# Key maps


def _compile(pattern: str) -> re.Pattern:
    return re.compile(re.escape(pattern).replace(r"\{\}", r"(\d+)") + "$")


def apply_key_map(state: dict[str, torch.Tensor], rules: Rules) -> tuple[dict[str, torch.Tensor], list[str]]:
    """Rename ``state`` by ``rules``; returns (renamed state, dropped keys). Unmatched keys raise."""
    compiled = [(_compile(src), dst) for src, dst in rules]
    out: dict[str, torch.Tensor] = {}
    dropped, unused = [], []
    for key, tensor in state.items():
        for regex, dst in compiled:
            match = regex.match(key)
            if match is None:
                continue
            if dst is None:
                dropped.append(key)
            else:
                out[dst.replace("{}", match.group(1)) if match.groups() else dst] = tensor
            break
        else:
            unused.append(key)
    if unused:
        raise ConvertError(
            f"{len(unused)} source key(s) match no rule of the key map: {_names(unused)}; "
            "this checkpoint's layout is not one this converter knows"
        )
    return out, dropped


def _names(keys: list[str], limit: int = 12) -> str:
    keys = sorted(keys)
    shown = ", ".join(keys[:limit])
    return shown + (f" and {len(keys) - limit} more" if len(keys) > limit else "")


def _layer_indices(state: dict[str, torch.Tensor]) -> list[int]:
    found = {int(m.group(1)) for k in state if (m := re.match(r"yoso\.encoder\.layer\.(\d+)\.", k))}
    return sorted(found)


# ---------------------------------------------------------------------------------------------
# Reading sources


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
    if path.suffix == ".safetensors":
        return load_file(str(path))
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

    from . import modeling

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
    theirs, info = getattr(transformers, arch).from_pretrained(src, output_loading_info=True)
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


# ---------------------------------------------------------------------------------------------
# Building the target


def extend_positions(table: torch.Tensor, max_positions: int) -> torch.Tensor:
    """A YOSO position table for ``max_positions`` ids: the learned rows copied in blocks.

    ``table`` is ``(n + 2, hidden)`` with rows 0-1 reserved; row ``2 + j`` of the result is learned
    row ``2 + j % n``, so each block of ``n`` positions repeats what the source learned.
    """
    learned = table[POSITION_OFFSET:]  # (n, hidden)
    n = learned.shape[0]
    reps = -(-max_positions // n)
    blocks = learned.repeat(reps, 1)[:max_positions]  # (max_positions, hidden)
    return torch.cat([table[:POSITION_OFFSET], blocks], dim=0)


def _yoso_overrides(fields: dict[str, Any], opts: ConvertOptions, report: ConvertReport) -> None:
    for name in ("use_expectation", "num_hash", "hash_code_len", "conv_window"):
        value = getattr(opts, name)
        if value is None:
            continue
        from .config import YosoConfig

        old = fields.get(name, getattr(YosoConfig(), name))
        if old != value:
            report.config_changes.append(f"{name}: {old} -> {value}")
        fields[name] = value


def build_target(state: dict[str, torch.Tensor], fields: dict[str, Any], arch: str, report: ConvertReport):
    """Our model of ``arch`` loaded from ``state`` after exhaustive key and shape checks."""
    from . import modeling
    from .config import YosoConfig, check_model_config

    try:
        config = YosoConfig(**fields)
        check_model_config(config)  # constraints between fields, checked where a model is built
    except (ValueError, TypeError) as exc:
        raise ConvertError(f"the converted configuration is invalid: {exc}") from exc
    config.architectures = [arch]
    torch.manual_seed(0)
    model = getattr(modeling, arch)(config).eval()
    expected = model.state_dict()
    if arch == "YosoModel":  # the bare encoder's keys have no "yoso." prefix
        state = {k.removeprefix("yoso."): v for k, v in state.items()}
        tied = {}
    else:
        state, tied = dict(state), TIED
    for key, partner in tied.items():
        if key in expected and key not in state and partner in state:
            state[key] = state[partner]
    for key in list(expected):
        if key.endswith("attention.self.conv.weight") and key not in state:
            state[key] = torch.zeros_like(expected[key])  # a new YOSO-C branch that adds nothing at first
            report.initialised.append(key)
    missing = [k for k in expected if k not in state]
    unexpected = [k for k in state if k not in expected]
    if missing:
        raise ConvertError(
            f"{len(missing)} key(s) of the YOSO model are not provided by the source: {_names(missing)}"
        )
    if unexpected:
        raise ConvertError(
            f"{len(unexpected)} converted key(s) have no place in the YOSO model: {_names(unexpected)}"
        )
    bad = [
        f"{k} {tuple(state[k].shape)} vs {tuple(v.shape)}"
        for k, v in expected.items()
        if tuple(state[k].shape) != tuple(v.shape)
    ]
    if bad:
        raise ConvertError(f"{len(bad)} shape mismatch(es), source vs YOSO: {'; '.join(bad[:8])}")
    model.load_state_dict({k: v.to(expected[k].dtype) for k, v in state.items()}, strict=True)
    report.mapped = len(state)
    return model


def _check_forward(model, arch: str) -> None:
    """One short forward pass; a converted model must run and give finite outputs."""
    cfg = model.config
    n = min(16, cfg.max_position_embeddings)
    gen = torch.Generator().manual_seed(0)
    ids = (
        torch.randint(3, cfg.vocab_size, (2, n), generator=gen)
        if cfg.vocab_size > 3
        else torch.zeros(2, n, dtype=torch.long)
    )
    if arch == "YosoForMultipleChoice":
        ids = ids[:, None, :].expand(2, 2, n)
    with torch.no_grad(), warnings.catch_warnings():
        warnings.filterwarnings("ignore", message="yoso: using the slow pure-PyTorch attention")
        out = model(input_ids=ids)
    first = out[0] if isinstance(out, tuple) else next(v for v in out.values() if isinstance(v, torch.Tensor))
    if not torch.isfinite(first).all():
        raise ConvertError("the converted model gives non-finite outputs on a test input")


def verify_against(theirs, ours, arch: str) -> float:
    """Max |difference| of our and transformers' outputs on a seeded unpadded input, in expectation mode.

    transformers' sampled mode has no CPU path, so both models run YOSO-E here; the weights checked
    are the same either way.
    """
    saved = []
    for model in (theirs, ours):
        for module in model.modules():
            if hasattr(module, "use_expectation") and hasattr(module, "num_hash"):
                saved.append((module, module.use_expectation))
                module.use_expectation = True
    try:
        cfg = ours.config
        n = min(24, cfg.max_position_embeddings)
        gen = torch.Generator().manual_seed(0)
        shape = (2, 3, n) if arch == "YosoForMultipleChoice" else (2, n)
        ids = torch.randint(3, max(cfg.vocab_size, 4), shape, generator=gen)
        with torch.no_grad():
            a, b = theirs(input_ids=ids), ours(input_ids=ids)
        diffs = [
            (x.float() - y.float()).abs().max().item()
            for x, y in zip(a.to_tuple(), b.to_tuple())
            if isinstance(x, torch.Tensor)
        ]
        return max(diffs)
    finally:
        for module, value in saved:
            module.use_expectation = value


def looks_like_model_dir(path: Path) -> bool:
    """Whether ``path`` is a saved model directory: a ``config.json`` and a weights file."""
    return (path / "config.json").is_file() and any((path / name).is_file() for name in WEIGHT_FILES)


def check_destination(src: str | Path, dst: str | Path, force: bool) -> None:
    """ConvertError unless ``dst`` may be written: absent, or (``force``) a model dir not holding SRC."""
    from .training.checkpoint import swap_location

    dst = Path(dst)
    if not os.path.lexists(dst):
        return
    if not force:
        raise ConvertError(f"DST {dst} already exists; choose a new directory or pass --force to replace it")
    real_dst = swap_location(dst)
    if Path(src).exists():
        real_src = swap_location(src)
        if real_src == real_dst or real_dst in real_src.parents:
            raise ConvertError(
                f"--force would delete DST {dst}, which holds SRC {src}; choose a DST outside SRC"
            )
    if not os.path.lexists(real_dst):
        return  # a link to nothing yet: the model is written where it points
    if not real_dst.is_dir():
        raise ConvertError(
            f"DST {dst} is a file, not a model directory; --force replaces only model directories"
        )
    if any(real_dst.iterdir()) and not looks_like_model_dir(real_dst):
        raise ConvertError(
            f"DST {dst} does not look like a model directory (no config.json with model weights), so "
            "--force will not delete it; choose another DST, or remove it yourself"
        )


def _write(
    model, dst: Path, src_dir: Path | None, report: ConvertReport, positions_changed: int | None
) -> None:
    """Save into a temporary directory beside ``dst``, copy tokenizer files, then rename into place.

    A ``dst`` that is a symbolic link keeps its link; the directory it points to is replaced.
    """
    from .training.checkpoint import staged_dir

    with staged_dir(dst) as tmp:
        model.save_pretrained(tmp)
        if src_dir is not None:
            for name in TOKENIZER_FILES:
                if (src_dir / name).is_file():
                    shutil.copy2(src_dir / name, tmp / name)
            config_path = tmp / "tokenizer_config.json"
            if positions_changed is not None and config_path.is_file():
                tok = json.loads(config_path.read_text())
                if "model_max_length" in tok:
                    tok["model_max_length"] = positions_changed
                    config_path.write_text(json.dumps(tok, indent=2) + "\n")
        report.files = sorted(p.name for p in tmp.iterdir())


def convert(src: str | Path, dst: str | Path, opts: ConvertOptions) -> ConvertReport:
    """Convert the checkpoint at ``src`` (``opts.source`` kind) to a YOSO model directory at ``dst``."""
    if opts.source not in SOURCES:
        raise ConvertError(f"--from must be one of {', '.join(SOURCES)}, got {opts.source!r}")
    if opts.dtype is not None and opts.dtype not in DTYPES:
        raise ConvertError(f"--dtype must be one of {', '.join(DTYPES)}, got {opts.dtype!r}")
    if opts.max_position_embeddings is not None and opts.max_position_embeddings < 1:
        raise ConvertError(f"--max-position-embeddings must be positive, got {opts.max_position_embeddings}")
    if opts.num_attention_heads is not None:
        if opts.source != "original":
            raise ConvertError(
                f"--num-attention-heads is for --from original only; --from {opts.source} reads it "
                "from the checkpoint's config"
            )
        if opts.num_attention_heads < 1:
            raise ConvertError(f"--num-attention-heads must be positive, got {opts.num_attention_heads}")
    dst = Path(dst)
    check_destination(src, dst, opts.force)
    report = ConvertReport(source=opts.source, src=str(src), dst=str(dst))
    theirs = None
    src_dir: Path | None = None
    if opts.source == "original":
        state, fields, arch = _from_original(Path(src), opts, report)
    elif opts.source in ("roberta", "bert"):
        src_dir = _resolve_dir(str(src))
        state, fields, arch = _from_softmax(str(src_dir), opts, report)
    else:
        src_dir = _resolve_dir(str(src))
        state, fields, arch, theirs, source_dtype = _from_transformers(str(src_dir), opts, report)
        report.dropped = []
    report.architecture = arch
    if theirs is None:
        source_dtype = _dtype_name({t.dtype for t in state.values() if t.is_floating_point()})

    if theirs is not None and opts.verify:
        # Check the load against transformers before any option changes the model.
        report.max_abs_diff = verify_against(theirs, build_target(state, fields, arch, report), arch)
        if not report.max_abs_diff <= 1e-5:
            raise ConvertError(
                f"outputs differ from transformers' by {report.max_abs_diff:.2e} (> 1e-5); the "
                "checkpoint did not load faithfully"
            )

    trained_window = fields.get("conv_window")
    if opts.conv_window is not None and trained_window is not None and opts.conv_window != trained_window:
        raise ConvertError(
            f"--conv-window {opts.conv_window} would discard the checkpoint's trained convolution "
            f"of window {trained_window}; leave --conv-window out"
        )
    _yoso_overrides(fields, opts, report)

    positions_changed = None
    if opts.max_position_embeddings is not None:
        old = int(fields["max_position_embeddings"])
        new = opts.max_position_embeddings
        if new != old:
            key = "yoso.embeddings.position_embeddings.weight"
            state[key] = extend_positions(state[key], new)
            fields["max_position_embeddings"] = new
            positions_changed = new
            how = (
                f"learned rows 2..{old + 1} copied in {-(-new // old)} block(s)"
                if new > old
                else f"truncated to the first {new} positions"
            )
            report.config_changes.append(f"max_position_embeddings: {old} -> {new} ({how})")

    model = build_target(state, fields, arch, report)
    if opts.verify:
        _check_forward(model, arch)
    dtype = opts.dtype or source_dtype
    if dtype is not None and dtype != "float32":
        model = model.to(DTYPES[dtype])
        report.notes.append(f"weights saved in {dtype}" + ("" if opts.dtype else " like the source's"))
    _write(model, dst, src_dir, report, positions_changed)
    return report
