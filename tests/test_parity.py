"""Parity with transformers' Yoso classes: weights load both ways, equal logits and gradients.

Expectation mode on unpadded input, where transformers is correct; tiny random configs.
"""

from __future__ import annotations

import pytest
import torch
import transformers
from helpers import TINY

import yoso_core

HEADS = {
    "YosoModel": dict(),
    "YosoForMaskedLM": dict(),
    "YosoForSequenceClassification": dict(num_labels=3),
    "YosoForMultipleChoice": dict(),
    "YosoForTokenClassification": dict(num_labels=5),
    "YosoForQuestionAnswering": dict(),
}
BATCH, SEQ, CHOICES = 2, 24, 3


def _inputs(name: str, gen: torch.Generator) -> dict:
    shape = (BATCH, CHOICES, SEQ) if name == "YosoForMultipleChoice" else (BATCH, SEQ)
    inputs = {"input_ids": torch.randint(3, TINY["vocab_size"], shape, generator=gen)}
    if name == "YosoForMaskedLM":
        inputs["labels"] = torch.randint(0, TINY["vocab_size"], (BATCH, SEQ), generator=gen)
    elif name == "YosoForSequenceClassification":
        inputs["labels"] = torch.randint(0, 3, (BATCH,), generator=gen)
    elif name == "YosoForMultipleChoice":
        inputs["labels"] = torch.randint(0, CHOICES, (BATCH,), generator=gen)
    elif name == "YosoForTokenClassification":
        inputs["labels"] = torch.randint(0, 5, (BATCH, SEQ), generator=gen)
    elif name == "YosoForQuestionAnswering":
        inputs["start_positions"] = torch.randint(0, SEQ, (BATCH,), generator=gen)
        inputs["end_positions"] = torch.randint(0, SEQ, (BATCH,), generator=gen)
    return inputs


def _loss(name: str, out) -> torch.Tensor:
    if name == "YosoModel":
        return out.last_hidden_state.pow(2).mean()
    return out.loss


def _logits(out) -> list[torch.Tensor]:
    if hasattr(out, "start_logits"):
        return [out.start_logits, out.end_logits]
    if hasattr(out, "logits"):
        return [out.logits]
    return [out.last_hidden_state]


def _compare(name, src, dst, gen):
    inputs = _inputs(name, gen)
    out_src, out_dst = src(**inputs), dst(**inputs)
    for a, b in zip(_logits(out_src), _logits(out_dst)):
        torch.testing.assert_close(b, a, rtol=0, atol=1e-5)
    _loss(name, out_src).backward()
    _loss(name, out_dst).backward()
    grads_src = {n: p.grad for n, p in src.named_parameters()}
    grads_dst = {n: p.grad for n, p in dst.named_parameters()}
    assert grads_src.keys() == grads_dst.keys()
    for n, g in grads_src.items():
        assert g is not None and grads_dst[n] is not None, n
        torch.testing.assert_close(grads_dst[n], g, rtol=0, atol=1e-4, msg=lambda m: f"{n}: {m}")


@pytest.mark.parametrize("conv_window", [None, 3])
@pytest.mark.parametrize("name", list(HEADS))
def test_transformers_to_ours_and_back(name, conv_window, tmp_path):
    kwargs = {**TINY, **HEADS[name], "conv_window": conv_window}
    theirs = getattr(transformers, name)(transformers.YosoConfig(**kwargs)).eval()
    theirs.save_pretrained(tmp_path / "theirs")
    ours, info = getattr(yoso_core, name).from_pretrained(tmp_path / "theirs", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    _compare(name, theirs, ours.eval(), torch.Generator().manual_seed(1))

    ours.save_pretrained(tmp_path / "ours")
    back, info = getattr(transformers, name).from_pretrained(tmp_path / "ours", output_loading_info=True)
    assert not info["missing_keys"] and not info["unexpected_keys"] and not info["mismatched_keys"]
    ours.zero_grad()
    _compare(name, ours, back.eval(), torch.Generator().manual_seed(2))


def test_parameter_names_equal_transformers():
    kwargs = {**TINY, "conv_window": 3}
    for name in HEADS:
        ours = getattr(yoso_core, name)(yoso_core.YosoConfig(**kwargs))
        theirs = getattr(transformers, name)(transformers.YosoConfig(**kwargs))
        assert ours.state_dict().keys() == theirs.state_dict().keys(), name
        for key, value in theirs.state_dict().items():
            assert ours.state_dict()[key].shape == value.shape, key


def test_mlm_decoder_is_tied_to_word_embeddings(tmp_path):
    model = yoso_core.YosoForMaskedLM(yoso_core.YosoConfig(**TINY))
    assert (
        model.cls.predictions.decoder.weight.data_ptr()
        == model.yoso.embeddings.word_embeddings.weight.data_ptr()
    )
    model.save_pretrained(tmp_path)
    assert (tmp_path / "model.safetensors").exists()
    loaded = yoso_core.YosoForMaskedLM.from_pretrained(tmp_path)
    assert (
        loaded.cls.predictions.decoder.weight.data_ptr()
        == loaded.yoso.embeddings.word_embeddings.weight.data_ptr()
    )
