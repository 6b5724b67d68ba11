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
