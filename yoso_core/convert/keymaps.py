"""Key maps: declarative ``(source key, target key)`` tables per source layout, and applying them."""

from __future__ import annotations

import re

import torch

from .options import ConvertError

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
