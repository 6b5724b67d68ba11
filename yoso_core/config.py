"""YosoConfig: the transformers-compatible configuration of a YOSO encoder.

Same fields, defaults and ``model_type`` as transformers' ``YosoConfig``, so a ``config.json``
written by either library loads in the other. Unlike transformers, invalid values fail early
with a message that names the field, the value and the allowed range.

Like transformers, a configuration whose fields are each valid but do not fit together (a
``hidden_size`` that ``num_attention_heads`` does not divide) can still be built, edited and
serialised; ``check_model_config`` refuses it when a model is built from it.
"""

from __future__ import annotations

from typing import Any

from transformers import PretrainedConfig

# Bucket tables have 2**hash_code_len rows; beyond 2**16 rows a table per batch*head stops
# fitting in cache and collisions become so rare that the estimate is mostly zeros.
MIN_HASH_CODE_LEN = 1
MAX_HASH_CODE_LEN = 16
MIN_NUM_HASH = 1
MAX_NUM_HASH = 256
HASH_RANGES = {
    "num_hash": (MIN_NUM_HASH, MAX_NUM_HASH),
    "hash_code_len": (MIN_HASH_CODE_LEN, MAX_HASH_CODE_LEN),
}


def hash_setting_error(
    name: str, value: Any, *, label: str | None = None, allowed: str = "an integer in"
) -> str | None:
    """None for a valid ``num_hash``/``hash_code_len``, else ``LABEL must be ALLOWED [lo, hi], got VALUE``."""
    low, high = HASH_RANGES[name]
    if not isinstance(value, bool) and isinstance(value, int) and low <= value <= high:
        return None
    return f"{label or name} must be {allowed} [{low}, {high}], got {value!r}"


class YosoConfig(PretrainedConfig):
    """Configuration of a YOSO model (Zeng et al., 2021).

    ``use_expectation`` selects YOSO-E (exact collision probabilities, quadratic) over sampled
    YOSO (``num_hash`` hash functions of ``hash_code_len`` bits, linear). ``conv_window`` adds
    YOSO-C's depthwise convolution over the values. ``use_fast_hash`` hashes with a structured
    Hadamard rotation instead of a dense Gaussian projection; ``lsh_backward`` computes sampled
    gradients by weighted LSH cumulation instead of the quadratic YOSO-E surrogate.
    """

    model_type = "yoso"

    vocab_size: int = 50265
    hidden_size: int = 768
    num_hidden_layers: int = 12
    num_attention_heads: int = 12
    intermediate_size: int = 3072
    hidden_act: str = "gelu"
    hidden_dropout_prob: float | int = 0.1
    attention_probs_dropout_prob: float | int = 0.1
    max_position_embeddings: int = 4096
    type_vocab_size: int = 1
    initializer_range: float = 0.02
    layer_norm_eps: float = 1e-12
    use_expectation: bool = True
    hash_code_len: int = 9
    num_hash: int = 64
    conv_window: int | None = None
    use_fast_hash: bool = True
    lsh_backward: bool = True
    pad_token_id: int | None = 1
    bos_token_id: int | None = 0
    eos_token_id: int | list[int] | None = 2
    add_cross_attention: bool = False
    tie_word_embeddings: bool = True

    def __post_init__(self, **kwargs):
        super().__post_init__(**kwargs)
        check_config(self)


SIZE_FIELDS = (
    "vocab_size",
    "hidden_size",
    "num_hidden_layers",
    "num_attention_heads",
    "intermediate_size",
    "max_position_embeddings",
    "type_vocab_size",
)


def _whole_number(config: YosoConfig, name: str, minimum: int) -> None:
    value = getattr(config, name)
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        kind = "a positive integer" if minimum == 1 else "a non-negative integer"
        raise ValueError(f"YosoConfig.{name} must be {kind}, got {value!r}")


def check_config(config: YosoConfig) -> None:
    """Raise ValueError naming the field, the value and the allowed range for any invalid field.

    Checks each field on its own. Sizes may be 0 here (a placeholder to fill in later, as
    transformers allows); a model needs them positive, which ``check_model_config`` checks.
    """
    for name in SIZE_FIELDS:
        _whole_number(config, name, 0)
    for name in ("hash_code_len", "num_hash"):
        if problem := hash_setting_error(name, getattr(config, name), label=f"YosoConfig.{name}"):
            raise ValueError(problem)
    w = config.conv_window
    if w is not None and (isinstance(w, bool) or not isinstance(w, int) or w < 1 or w % 2 == 0):
        raise ValueError(
            f"YosoConfig.conv_window must be None or an odd positive integer (1, 3, 5, ...), got {w!r}; "
            "an even window would shift the sequence by half a token"
        )
    for name in ("hidden_dropout_prob", "attention_probs_dropout_prob"):
        p = getattr(config, name)
        if not 0.0 <= float(p) < 1.0:
            raise ValueError(f"YosoConfig.{name} must be in [0, 1), got {p!r}")


def check_model_config(config: YosoConfig) -> None:
    """Raise ValueError when fields that are each valid do not fit together into a model.

    Called when a model is built, as transformers does, so that a configuration can be created
    with any valid field values and completed afterwards.
    """
    check_config(config)
    for name in SIZE_FIELDS:
        _whole_number(config, name, 1)
    if config.hidden_size % config.num_attention_heads != 0:
        raise ValueError(
            f"YosoConfig.hidden_size ({config.hidden_size}) must be divisible by num_attention_heads "
            f"({config.num_attention_heads}); pick a head count that divides it"
        )
