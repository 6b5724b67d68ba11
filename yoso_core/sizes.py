"""Named model sizes for training from scratch and for benchmarks (``--model tiny|small|base``).

``base`` is the paper's and transformers' default architecture; ``small`` and ``tiny`` shrink it
for laptops and tests. Each is a dict of YosoConfig fields; the vocabulary size comes from the
tokenizer at training time.
"""

from __future__ import annotations

from typing import Any

MODEL_SIZES: dict[str, dict[str, Any]] = {
    "tiny": dict(hidden_size=64, num_hidden_layers=2, num_attention_heads=2, intermediate_size=256),
    "small": dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4, intermediate_size=1024),
    "base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}


def size_config(name: str, **overrides: Any):
    """A YosoConfig of the named size; ``overrides`` set any other field."""
    from .config import YosoConfig

    if name not in MODEL_SIZES:
        raise ValueError(
            f"unknown model size {name!r}; choose one of {', '.join(MODEL_SIZES)} or give a directory"
        )
    return YosoConfig(**{**MODEL_SIZES[name], **overrides})


# ``--hash-code-len auto`` for models trained from scratch: tau = log2(seq_len), never below 8 (what
# short inputs use in the paper and transformers) and never above 16 (YosoConfig's bound). With unit
# queries and keys a fixed tau lets the weight of unrelated keys grow with n; log2(n) keeps it
# about constant (see docs/quality.md for the measurements behind this choice).
AUTO_MIN_HASH_CODE_LEN = 8
AUTO_MAX_HASH_CODE_LEN = 16


def auto_hash_code_len(seq_len: int) -> int:
    """The default ``hash_code_len`` for a new model of ``seq_len`` tokens: round(log2(n)) in [8, 16]."""
    import math

    if seq_len < 1:
        raise ValueError(f"seq_len must be positive, got {seq_len}")
    return max(AUTO_MIN_HASH_CODE_LEN, min(AUTO_MAX_HASH_CODE_LEN, round(math.log2(seq_len))))


def softmax_config(name: str, **overrides: Any):
    """A transformers RobertaConfig of the named size (the softmax baseline of the same architecture).

    ``max_position_embeddings`` in ``overrides`` is YOSO's (the usable length); the RoBERTa table
    gets the two extra rows of its position offset (ids start at ``pad_token_id + 1`` = 2).
    """
    from transformers import RobertaConfig

    from .saved import ROBERTA_POSITION_OFFSET

    if name not in MODEL_SIZES:
        raise ValueError(
            f"unknown model size {name!r}; choose one of {', '.join(MODEL_SIZES)} or give a directory"
        )
    fields = {**MODEL_SIZES[name], "type_vocab_size": 1, "layer_norm_eps": 1e-12, **overrides}
    if "max_position_embeddings" in fields:
        fields["max_position_embeddings"] = int(fields["max_position_embeddings"]) + ROBERTA_POSITION_OFFSET
    return RobertaConfig(**fields)
