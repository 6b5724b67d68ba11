"""`--hash-code-len auto`: log2(--seq-len) in [8, 16] for new models; a loaded model keeps its own."""

from __future__ import annotations

import pytest

from yoso_core.data import build_tokenizer
from yoso_core.sizes import auto_hash_code_len
from yoso_core.training import ConfigError, merge_config
from yoso_core.training import build as training_build
from yoso_core.training.build import build_model, effective_config
from yoso_core.training.config import ATTENTIONS


@pytest.fixture(scope="module")
def tokenizer():
    return build_tokenizer(["the pass key is 12345 remember it"] * 20, vocab_size=300, max_length=4096)


def test_auto_is_log2_of_the_length_clamped():
    assert [auto_hash_code_len(n) for n in (8, 256, 362, 363, 1024, 2048, 4096, 16384, 2**20)] == [
        8, 8, 8, 9, 10, 11, 12, 14, 16,
    ]  # fmt: skip


@pytest.mark.parametrize("seq_len, tau", [(128, 8), (1024, 10), (2048, 11)])
def test_a_new_model_gets_the_auto_default(tokenizer, seq_len, tau):
    config = merge_config(None, {"model": "tiny", "seq_len": seq_len, "attention": "sampled"}, task="mlm")
    assert config.hash_code_len is None
    assert build_model(config, tokenizer, None).config.hash_code_len == tau


def test_auto_and_numbers_are_accepted_as_text(tokenizer):
    assert merge_config(None, {"hash_code_len": "auto"}, task="mlm").hash_code_len is None
    assert merge_config(None, {"hash_code_len": "12"}, task="mlm").hash_code_len == 12
    with pytest.raises(ConfigError, match="hash_code_len must be an integer or 'auto'"):
        merge_config(None, {"hash_code_len": "twelve"}, task="mlm")
    explicit = merge_config(None, {"model": "tiny", "seq_len": 2048, "hash_code_len": "7"}, task="mlm")
    assert build_model(explicit, tokenizer, None).config.hash_code_len == 7


def test_a_model_directory_keeps_its_own(tokenizer, tmp_path):
    config = merge_config(None, {"model": "tiny", "seq_len": 64, "hash_code_len": 13}, task="mlm")
    model = build_model(config, tokenizer, None)
    model.save_pretrained(tmp_path / "m")
    again = merge_config(None, {"model": str(tmp_path / "m"), "seq_len": 64}, task="mlm")
    assert build_model(again, tokenizer, None).config.hash_code_len == 13  # not auto's 8


@pytest.mark.integration
@pytest.mark.usefixtures("one_thread")
@pytest.mark.parametrize("seq_len", [128, 2048])
def test_pretrain_and_bench_mean_the_same_auto(tmp_path, seq_len):
    """`yoso pretrain` and `yoso bench` take one rule for auto (the bench once clamped to [1, 16], so
    128 tokens meant tau 7 there and 8 here)."""
    import json

    from helpers import invoke

    from yoso_core import bench

    assert bench.auto_hash_code_len is auto_hash_code_len
    out = tmp_path / "mlm"
    trained = invoke(
        "pretrain", "--model", "tiny", "--seq-len", str(seq_len), "--max-steps", "1", "--batch-size", "1",
        "--num-train", "4", "--num-validation", "1", "--attention", "sampled", "--num-hash", "2",
        "--hash-code-len", "auto", "--output-dir", str(out),
    )  # fmt: skip
    assert trained.exit_code == 0, trained.stderr
    trained_tau = json.loads((out / "final" / "config.json").read_text())["hash_code_len"]
    timed = invoke(
        "bench", "--seq-len", str(seq_len), "--hash-code-len", "auto", "--impl", "yoso-reference",
        "--heads", "1", "--head-dim", "8", "--num-hash", "2", "--repeats", "1", "--warmup", "0",
        "--memory", "none", "--json",
    )  # fmt: skip
    assert timed.exit_code == 0, timed.stderr
    (row,) = [json.loads(line) for line in timed.stdout.splitlines()]
    assert trained_tau == row["hash_code_len"] == auto_hash_code_len(seq_len) == {128: 8, 2048: 11}[seq_len]


@pytest.mark.parametrize("attention", ATTENTIONS)
def test_every_attention_the_config_accepts_builds_that_family(tokenizer, attention):
    """``training.config.ATTENTIONS`` is the one list: each name builds a model that reports it back."""
    config = merge_config(None, {"model": "tiny", "seq_len": 128, "attention": attention}, task="mlm")
    model = build_model(config, tokenizer, None)
    assert effective_config(config, model).attention == attention
    assert model.config.model_type == ("roberta" if attention == "softmax" else "yoso")


def test_an_attention_outside_the_list_is_refused():
    assert not hasattr(training_build, "ATTENTIONS")  # the list lives in training/config.py only
    with pytest.raises(ConfigError, match="--attention must be one of sampled, expectation, softmax"):
        merge_config(None, {"attention": "linear"}, task="mlm")
