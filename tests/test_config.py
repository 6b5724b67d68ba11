"""YosoConfig: transformers' defaults, round trips through both libraries, validation."""

from __future__ import annotations

import json

import pytest
import transformers

import yoso_core
from yoso_core import YosoConfig

FIELDS = dict(
    vocab_size=50265,
    hidden_size=768,
    num_hidden_layers=12,
    num_attention_heads=12,
    intermediate_size=3072,
    hidden_act="gelu",
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    max_position_embeddings=4096,
    type_vocab_size=1,
    initializer_range=0.02,
    layer_norm_eps=1e-12,
    use_expectation=True,
    hash_code_len=9,
    num_hash=64,
    conv_window=None,
    use_fast_hash=True,
    lsh_backward=True,
    pad_token_id=1,
    bos_token_id=0,
    eos_token_id=2,
)


def test_defaults_equal_transformers():
    ours, theirs = YosoConfig(), transformers.YosoConfig()
    assert ours.model_type == "yoso"
    for name, value in FIELDS.items():
        assert getattr(ours, name) == value, name
        assert getattr(theirs, name) == value, name


def test_config_json_loads_in_both_directions(tmp_path):
    ours = YosoConfig(
        hidden_size=64,
        num_attention_heads=4,
        conv_window=5,
        num_hash=17,
        hash_code_len=6,
        use_expectation=False,
    )
    ours.save_pretrained(tmp_path / "ours")
    assert json.loads((tmp_path / "ours" / "config.json").read_text())["model_type"] == "yoso"
    theirs = transformers.YosoConfig.from_pretrained(tmp_path / "ours")
    assert (theirs.hidden_size, theirs.conv_window, theirs.num_hash, theirs.hash_code_len) == (64, 5, 17, 6)
    assert theirs.use_expectation is False
    theirs.num_hash = 3
    theirs.save_pretrained(tmp_path / "theirs")
    back = YosoConfig.from_pretrained(tmp_path / "theirs")
    assert (back.num_hash, back.conv_window, back.hidden_size) == (3, 5, 64)
    assert isinstance(transformers.AutoConfig.from_pretrained(tmp_path / "ours"), transformers.YosoConfig)


@pytest.mark.parametrize(
    "kwargs, words",
    [
        (dict(hash_code_len=0), ["hash_code_len", "[1, 16]", "0"]),
        (dict(hash_code_len=17), ["hash_code_len", "17"]),
        (dict(num_hash=0), ["num_hash", "0", "[1, 256]"]),
        (dict(conv_window=4), ["conv_window", "odd", "4"]),
        (dict(conv_window=-3), ["conv_window", "-3"]),
        (dict(hidden_dropout_prob=1.5), ["hidden_dropout_prob", "1.5"]),
        (dict(num_hidden_layers=-1), ["num_hidden_layers", "-1", "non-negative"]),
        (dict(hidden_size=32.0), ["hidden_size", "32.0"]),
    ],
)
def test_invalid_values_name_field_value_and_range(kwargs, words):
    with pytest.raises(ValueError) as err:
        YosoConfig(**kwargs)
    for word in words:
        assert word in str(err.value)


def test_fields_that_do_not_fit_together_are_refused_when_a_model_is_built(tmp_path):
    """As in transformers: hidden_size 32 with the default 12 heads is a valid config, not a valid model."""
    config = YosoConfig(hidden_size=32)
    assert config.num_attention_heads == 12
    config.save_pretrained(tmp_path)
    assert YosoConfig.from_pretrained(tmp_path).to_dict() == config.to_dict()
    for name in ("YosoModel", "YosoForMaskedLM", "YosoForQuestionAnswering"):
        with pytest.raises(ValueError) as err:
            getattr(yoso_core, name)(config)
        for word in ("hidden_size", "32", "num_attention_heads", "12", "divisible"):
            assert word in str(err.value)
    config.num_attention_heads = 4  # completed afterwards, the same config builds
    assert yoso_core.YosoModel(config).config.num_attention_heads == 4


def test_fields_changed_after_construction_are_checked_when_a_model_is_built():
    config = YosoConfig(hidden_size=32, num_attention_heads=4)
    config.num_hash = 0
    with pytest.raises(ValueError, match=r"num_hash must be an integer in \[1, 256\], got 0"):
        yoso_core.YosoModel(config)


def test_zero_sizes_are_a_config_but_not_a_model():
    config = YosoConfig(hidden_size=0)
    assert config.hidden_size == 0
    with pytest.raises(ValueError, match=r"YosoConfig.hidden_size must be a positive integer, got 0"):
        yoso_core.YosoModel(config)


def test_convert_names_fields_that_do_not_fit_together():
    from yoso_core.convert import ConvertError, ConvertReport, build_target

    report = ConvertReport(source="transformers", src="src", dst="dst")
    fields = dict(vocab_size=99, hidden_size=30, num_attention_heads=4, num_hidden_layers=1)
    words = r"configuration is invalid.*hidden_size \(30\).*num_attention_heads \(4\)"
    with pytest.raises(ConvertError, match=words):
        build_target({}, fields, "YosoModel", report)
