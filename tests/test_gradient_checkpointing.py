"""Gradient checkpointing: a checkpointed step equals an unchecked one; the option reaches the model."""

from __future__ import annotations

import copy
import json

import pytest
import torch
import transformers
import yaml
from helpers import TINY, invoke

from yoso_core import YosoConfig, YosoForMaskedLM
from yoso_core.modeling import enable_gradient_checkpointing, is_gradient_checkpointing
from yoso_core.training import loop as training_loop
from yoso_core.training import merge_config

pytestmark = pytest.mark.usefixtures("one_thread")

SEQ = 48


def _batch():
    gen = torch.Generator().manual_seed(1)
    ids = torch.randint(3, TINY["vocab_size"], (2, SEQ), generator=gen)
    mask = torch.ones(2, SEQ, dtype=torch.long)
    mask[1, 37:] = 0  # a padded row
    labels = torch.where(torch.rand(2, SEQ, generator=gen) < 0.3, ids, torch.full_like(ids, -100))
    return dict(input_ids=ids, attention_mask=mask, labels=labels)


def _step(model, seed: int = 7):
    """Loss and parameter gradients of one training-mode forward and backward, RNG seeded first."""
    model.train()
    model.zero_grad(set_to_none=True)
    torch.manual_seed(seed)
    loss = model(**_batch()).loss
    loss.backward()
    return loss.detach(), {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}


def _pair(model, **kwargs):
    """(unchecked copy, checkpointed copy) of ``model``; ``kwargs`` go to torch's checkpoint."""
    plain, checked = copy.deepcopy(model), copy.deepcopy(model)
    enable_gradient_checkpointing(checked, **kwargs)
    assert is_gradient_checkpointing(checked) and not is_gradient_checkpointing(plain)
    return plain, checked


def _assert_same_step(plain, checked):
    loss, grads = _step(plain)
    loss_c, grads_c = _step(checked)
    assert grads and grads.keys() == grads_c.keys()
    torch.testing.assert_close(loss_c, loss, rtol=1e-6, atol=0)
    for name, grad in grads.items():
        torch.testing.assert_close(grads_c[name], grad, rtol=1e-5, atol=1e-7, msg=lambda m, n=name: n + m)


def _yoso(**fields):
    torch.manual_seed(0)
    return YosoForMaskedLM(YosoConfig(**{**TINY, **fields}))


@pytest.mark.parametrize(
    "fields",
    [
        dict(use_expectation=False, num_hash=8, hash_code_len=6),
        dict(use_expectation=False, num_hash=8, hash_code_len=6, conv_window=5),
        dict(use_expectation=True, hash_code_len=6),
        # dropout on: the recompute must draw the forward's dropout masks too
        dict(use_expectation=False, num_hash=8, hash_code_len=6, hidden_dropout_prob=0.1),
    ],
    ids=["sampled", "sampled-conv", "expectation", "sampled-dropout"],
)
def test_a_checkpointed_step_equals_an_unchecked_one(fields):
    _assert_same_step(*_pair(_yoso(**fields)))


def test_the_recompute_draws_the_forward_hash_functions():
    """Sampled attention only matches because the recompute restores the RNG: with the RNG state not
    preserved it hashes with new functions, and the gradients differ (so the test above can fail)."""
    model = _yoso(use_expectation=False, num_hash=8, hash_code_len=6)
    plain, fresh = _pair(model, preserve_rng_state=False)
    loss, grads = _step(plain)
    loss_f, grads_f = _step(fresh)
    torch.testing.assert_close(loss_f, loss, rtol=1e-6, atol=0)  # the forward is the same
    name = "yoso.encoder.layer.0.attention.self.query.weight"
    assert not torch.allclose(grads_f[name], grads[name], rtol=1e-3, atol=1e-6)


def test_the_softmax_baseline_checkpoints_alike():
    torch.manual_seed(0)
    sizes = {**TINY, "max_position_embeddings": SEQ + 2, "hidden_dropout_prob": 0.1}
    config = transformers.RobertaConfig(**sizes)
    model = transformers.RobertaForMaskedLM._from_config(config, attn_implementation="sdpa")
    _assert_same_step(*_pair(model))


def test_the_option_is_a_config_field_from_yaml_and_flags(tmp_path):
    path = tmp_path / "run.yaml"
    path.write_text("gradient-checkpointing: true\n")
    assert merge_config(None, {}, task="mlm").gradient_checkpointing is False
    assert merge_config(path, {}, task="mlm").gradient_checkpointing is True
    assert merge_config(path, {"gradient_checkpointing": False}, task="mlm").gradient_checkpointing is False
    path.write_text("gradient_checkpointing: often\n")
    with pytest.raises(Exception, match="gradient_checkpointing` must be bool"):
        merge_config(path, {}, task="mlm")


@pytest.fixture
def built(monkeypatch):
    """Records, for each model a training run builds, whether checkpointing is on."""
    seen: list[bool] = []
    build = training_loop.build_model

    def spy(*args, **kwargs):
        model = build(*args, **kwargs)
        seen.append(is_gradient_checkpointing(model))
        return model

    monkeypatch.setattr(training_loop, "build_model", spy)
    return seen


def _train(tmp_path, name: str, *args: str) -> dict:
    out = tmp_path / name
    common = ["--model", "tiny", "--seq-len", "32", "--max-steps", "2", "--batch-size", "2"]
    common += ["--num-train", "8", "--num-validation", "2", "--attention", "sampled", "--num-hash", "4"]
    result = invoke(*args, *common, "--output-dir", str(out))
    assert result.exit_code == 0, result.stderr
    return json.loads(result.stdout.strip().splitlines()[-1]) | {"dir": out}


@pytest.mark.integration
def test_the_flag_and_the_yaml_key_reach_the_model_and_change_no_loss(tmp_path, built):
    """pretrain and finetune pass --gradient-checkpointing (or the YAML key) to the model, the run's
    config.yaml records it, and its losses equal those of the same run without it (dropout on)."""
    base, checked = tmp_path / "base.yaml", tmp_path / "checked.yaml"
    base.write_text("log_every: 1\n")
    checked.write_text("log_every: 1\ngradient_checkpointing: true\n")
    plain = _train(tmp_path, "plain", "pretrain", "--config", str(base))
    flag = _train(tmp_path, "flag", "pretrain", "--config", str(base), "--gradient-checkpointing")
    from_yaml = _train(tmp_path, "yaml", "pretrain", "--config", str(checked))
    off = _train(tmp_path, "off", "pretrain", "--config", str(checked), "--no-gradient-checkpointing")
    tuned = _train(tmp_path, "tuned", "finetune", "--task", "classification", "--gradient-checkpointing")
    assert built == [False, True, True, False, True]
    for run, on in ((plain, False), (flag, True), (from_yaml, True), (off, False), (tuned, True)):
        assert yaml.safe_load((run["dir"] / "config.yaml").read_text())["gradient_checkpointing"] is on

    def losses(run):
        lines = [json.loads(line) for line in (run["dir"] / "metrics.jsonl").read_text().splitlines()]
        return [line["loss"] for line in lines if line["split"] == "train"]

    assert len(losses(plain)) == 2
    assert losses(flag) == pytest.approx(losses(plain), rel=1e-6)
    assert losses(from_yaml) == pytest.approx(losses(plain), rel=1e-6)


@pytest.mark.parametrize("kind", ["yoso", "roberta"])
def test_is_gradient_checkpointing_is_transformers_property_without_its_warning(kind):
    """The flag is transformers' own (every layer's ``gradient_checkpointing``), read without the
    deprecation warning of its old name."""
    import warnings

    if kind == "yoso":
        model = YosoForMaskedLM(YosoConfig(**TINY))
    else:
        model = transformers.RobertaForMaskedLM(transformers.RobertaConfig(**TINY))
    expected = (
        getattr(type(model), "is_activation_checkpointing", None) or type(model).is_gradient_checkpointing
    )
    for enable in (False, True):
        if enable:
            enable_gradient_checkpointing(model)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            assert is_gradient_checkpointing(model) is enable is expected.fget(model)
    layers = [m for m in model.modules() if hasattr(m, "gradient_checkpointing")]
    for layer in layers:
        layer.gradient_checkpointing = False
    assert layers and not is_gradient_checkpointing(model)
    layers[-1].gradient_checkpointing = True  # one layer is enough
    assert is_gradient_checkpointing(model)
