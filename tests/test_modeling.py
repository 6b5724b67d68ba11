"""YosoModel behaviour beyond parity: exact padding, length limits, attentions, sampled mode."""

from __future__ import annotations

import copy

import pytest
import torch
from helpers import TINY

import yoso_core
from yoso_core import YosoConfig, YosoModel

MODES = {
    "expectation": dict(use_expectation=True),
    "expectation-conv": dict(use_expectation=True, conv_window=3),
    "sampled": dict(use_expectation=False, num_hash=16, hash_code_len=6),
    "sampled-simhash-conv": dict(
        use_expectation=False, num_hash=16, hash_code_len=6, use_fast_hash=False, conv_window=5
    ),
}


@pytest.mark.parametrize("mode", list(MODES))
def test_padding_never_changes_real_tokens(mode):
    model = YosoModel(YosoConfig(**TINY, **MODES[mode])).eval()
    lengths = [23, 9, 16]
    seqs = [torch.randint(3, TINY["vocab_size"], (n,)) for n in lengths]
    ids = torch.full((len(seqs), max(lengths)), TINY.get("pad_token_id", 1))
    mask = torch.zeros(len(seqs), max(lengths))
    for i, s in enumerate(seqs):
        ids[i, : len(s)], mask[i, : len(s)] = s, 1
    with torch.no_grad():
        torch.manual_seed(7)
        batched = model(ids, attention_mask=mask).last_hidden_state
        for i, s in enumerate(seqs):
            torch.manual_seed(7)
            alone = model(s[None]).last_hidden_state[0]
            torch.testing.assert_close(batched[i, : len(s)], alone, rtol=0, atol=1e-5)


def test_padding_matters_only_where_masked():
    """The mask is really applied: changing padded token ids changes nothing; unmasking them does."""
    model = YosoModel(YosoConfig(**TINY)).eval()
    ids = torch.randint(3, TINY["vocab_size"], (1, 20))
    mask = torch.ones(1, 20)
    mask[:, 12:] = 0
    other = ids.clone()
    other[:, 12:] = torch.randint(3, TINY["vocab_size"], (1, 8))
    with torch.no_grad():
        a = model(ids, attention_mask=mask).last_hidden_state[:, :12]
        b = model(other, attention_mask=mask).last_hidden_state[:, :12]
        c = model(other).last_hidden_state[:, :12]
    torch.testing.assert_close(a, b, rtol=0, atol=1e-6)
    assert (a - c).abs().max() > 1e-3


def test_sequence_longer_than_positions_is_a_clear_error():
    model = YosoModel(YosoConfig(**TINY))
    with pytest.raises(ValueError, match=r"sequence length 65 exceeds max_position_embeddings 64"):
        model(torch.randint(3, 99, (1, 65)))
    model(torch.randint(3, 99, (1, 64)))  # the limit itself is fine


def test_wrong_attention_mask_shape_is_a_clear_error():
    model = YosoModel(YosoConfig(**TINY))
    with pytest.raises(ValueError, match=r"attention_mask must have shape \(2, 10\)"):
        model(torch.randint(3, 99, (2, 10)), attention_mask=torch.ones(2, 11))


def test_output_attentions_are_yoso_e_weights():
    config = YosoConfig(**TINY)
    model = YosoModel(config).eval()
    ids = torch.randint(3, 99, (2, 10))
    mask = torch.ones(2, 10)
    mask[1, 6:] = 0
    out = model(ids, attention_mask=mask, output_attentions=True, output_hidden_states=True)
    assert len(out.attentions) == config.num_hidden_layers
    weights = out.attentions[0]
    assert weights.shape == (2, config.num_attention_heads, 10, 10)
    assert torch.all(weights >= 0) and torch.all(weights <= 1)
    assert torch.all(weights[1, :, 6:, :] == 0) and torch.all(weights[1, :, :, 6:] == 0)
    # recompute layer 0 by hand from the hidden states
    attn = model.encoder.layer[0].attention.self
    h = out.hidden_states[0]
    q = torch.nn.functional.normalize(attn._heads(attn.query(h)), dim=-1)
    k = torch.nn.functional.normalize(attn._heads(attn.key(h)), dim=-1)
    expected = (1 - torch.acos((q @ k.transpose(-1, -2)).clamp(-1, 1)) / torch.pi) ** config.hash_code_len
    expected = expected * mask[:, None, :, None] * mask[:, None, None, :]
    torch.testing.assert_close(weights, expected, rtol=0, atol=1e-5)


def test_expectation_has_no_nan_for_identical_tokens():
    """q.k rounding above 1 must not produce NaN through arccos (forward and backward)."""
    model = yoso_core.YosoForSequenceClassification(YosoConfig(**TINY, num_labels=2))
    ids = torch.full((2, 30), 7)
    out = model(ids, labels=torch.tensor([0, 1]))
    out.loss.backward()
    assert torch.isfinite(out.logits).all()
    assert all(torch.isfinite(p.grad).all() for p in model.parameters() if p.grad is not None)


def test_sampled_model_trains_and_is_reproducible():
    config = YosoConfig(**TINY, use_expectation=False, num_hash=8, hash_code_len=5, num_labels=2)
    model = yoso_core.YosoForSequenceClassification(config).train()
    ids = torch.randint(3, 99, (2, 17))
    torch.manual_seed(3)
    loss = model(ids, labels=torch.tensor([0, 1])).loss
    loss.backward()
    grads = {n: p.grad.clone() for n, p in model.named_parameters()}
    assert grads["yoso.encoder.layer.0.attention.self.query.weight"].abs().sum() > 0
    assert grads["yoso.encoder.layer.0.attention.self.value.weight"].abs().sum() > 0
    model.zero_grad()
    torch.manual_seed(3)
    again = model(ids, labels=torch.tensor([0, 1])).loss
    again.backward()
    assert again.item() == loss.item()
    for n, p in model.named_parameters():
        assert torch.equal(p.grad, grads[n]), n


def test_multiple_choice_shapes():
    model = yoso_core.YosoForMultipleChoice(YosoConfig(**TINY)).eval()
    out = model(
        torch.randint(3, 99, (2, 4, 12)), attention_mask=torch.ones(2, 4, 12), labels=torch.tensor([1, 3])
    )
    assert out.logits.shape == (2, 4) and out.loss.ndim == 0


def _padded_batch(n: int = 20):
    ids = torch.randint(3, 99, (2, n))
    mask = torch.ones(2, n)
    mask[1, n // 2 :] = 0
    return ids, mask


def test_returned_attentions_carry_the_output_gradient():
    """Expectation mode: the output is computed from the returned weights, so attribution works."""
    model = YosoModel(YosoConfig(**TINY)).eval()
    ids, mask = _padded_batch()
    out = model(ids, attention_mask=mask, output_attentions=True)
    for weights in out.attentions:
        weights.retain_grad()
    out.last_hidden_state[0, 3, 0].backward()  # (a LayerNorm row sums to a constant)
    grad = out.attentions[0].grad
    assert grad is not None and grad.shape == out.attentions[0].shape
    assert grad[0].abs().sum() > 0
    assert torch.all(grad[1] == 0)  # the loss reads sequence 0 only
    assert out.attentions[-1].grad is not None


def test_output_attentions_changes_no_output_and_no_gradient():
    """The weights path keeps YOSO-E's surrogate backward: same outputs and parameter gradients."""
    model = yoso_core.YosoForSequenceClassification(YosoConfig(**TINY, num_labels=3, conv_window=3))
    ids, mask = _padded_batch()
    labels = torch.tensor([0, 2])
    results = []
    for output_attentions in (False, True):
        model.zero_grad(set_to_none=True)
        out = model(ids, attention_mask=mask, labels=labels, output_attentions=output_attentions)
        out.loss.backward()
        results.append((out.logits.detach(), {n: p.grad.clone() for n, p in model.named_parameters()}))
    torch.testing.assert_close(results[1][0], results[0][0], rtol=0, atol=1e-6)
    for n, g in results[0][1].items():
        torch.testing.assert_close(results[1][1][n], g, rtol=1e-5, atol=1e-7, msg=lambda m, n=n: f"{n}: {m}")


def test_sampled_attentions_are_on_the_graph_of_queries_and_keys():
    config = YosoConfig(**TINY, use_expectation=False, num_hash=8, hash_code_len=5)
    model = YosoModel(config).eval()
    ids, mask = _padded_batch()
    weights = model(ids, attention_mask=mask, output_attentions=True).attentions[0]
    assert weights.requires_grad
    query = model.encoder.layer[0].attention.self.query.weight
    (grad,) = torch.autograd.grad(weights[0].sum(), query)
    assert torch.isfinite(grad).all() and grad.abs().sum() > 0


FP16_MODES = {
    "expectation": (dict(use_expectation=True), 1.5e-2),
    "expectation-conv": (dict(use_expectation=True, conv_window=3), 1.5e-2),
    "sampled": (dict(use_expectation=False, num_hash=16, hash_code_len=6), 3e-2),
}


@pytest.mark.parametrize("mode", list(FP16_MODES))
def test_float16_model_is_finite_and_close_to_float32(mode):
    """float16 weights, padded batch: finite everywhere, within atol of the float32 model.

    Tolerances: 1.5e-2 (YOSO-E; float16 rounding of unit-scale LayerNorm outputs is about 2e-3)
    and 3e-2 (sampled: float16 projections flip a few hash bits); mean error below 2e-3.
    """
    kwargs, atol = FP16_MODES[mode]
    model = YosoModel(YosoConfig(**TINY, **kwargs)).eval()
    half = copy.deepcopy(model).half()
    ids, mask = _padded_batch(40)
    with torch.no_grad():
        torch.manual_seed(1)  # same hash functions in both
        ref = model(ids, attention_mask=mask, output_attentions=True)
        torch.manual_seed(1)
        out = half(ids, attention_mask=mask, output_attentions=True)
    assert out.last_hidden_state.dtype == torch.float16
    assert torch.isfinite(out.last_hidden_state).all()
    diff = (out.last_hidden_state.float() - ref.last_hidden_state).abs()
    assert diff.max() < atol and diff.mean() < 2e-3, (diff.max().item(), diff.mean().item())
    for a, b in zip(out.attentions, ref.attentions):
        assert torch.isfinite(a).all()
        torch.testing.assert_close(a.float(), b, rtol=0, atol=5e-3)


def test_float16_heads_give_finite_scores():
    model = yoso_core.YosoForSequenceClassification(YosoConfig(**TINY, num_labels=3)).eval().half()
    ids, mask = _padded_batch()
    with torch.no_grad():
        logits = model(ids, attention_mask=mask).logits
    assert torch.isfinite(logits).all() and torch.isfinite(logits.float().softmax(-1)).all()


def test_nan_loss_hint_advises_fp32_only_to_runs_that_are_not_fp32():
    from yoso_core.training.config import TrainConfig
    from yoso_core.training.loop import _nan_loss_hint

    model = YosoModel(YosoConfig(**TINY))
    fp32 = _nan_loss_hint(TrainConfig(precision="fp32"), model)
    assert "--precision fp32" not in fp32 and "lower --learning-rate" in fp32
    assert "--precision fp32" in _nan_loss_hint(TrainConfig(precision="bf16"), model)
    half = _nan_loss_hint(TrainConfig(precision="fp32"), model.half())
    assert "float16" in half and "--dtype float32" in half and "--precision fp32" not in half


@pytest.mark.parametrize("expectation", [True, False])
def test_float16_attention_is_computed_in_float32_or_refused(expectation):
    from yoso_core.attention import yoso_attention

    kwargs = dict(expectation=expectation, num_hash=8, hash_code_len=4, backend="reference")
    q = torch.nn.functional.normalize(torch.randn(1, 2, 50, 16), dim=-1).half()
    k = torch.nn.functional.normalize(torch.randn(1, 2, 50, 16), dim=-1).half()
    v = torch.randn(1, 2, 50, 16).half()
    torch.manual_seed(3)
    ref = yoso_attention(q.float(), k.float(), v.float(), **kwargs)
    torch.manual_seed(3)
    out = yoso_attention(q, k, v, **kwargs)
    assert out.dtype == torch.float16
    torch.testing.assert_close(out.float(), ref, rtol=1e-3, atol=1e-3)  # float16 rounding of the result
    # identical keys and large values: each row sums 1000 * 100 > 65504, float16's largest number
    same = torch.nn.functional.normalize(torch.ones(1, 1, 1000, 16), dim=-1).half()
    with pytest.raises(ValueError, match=r"float16 attention output would overflow.*65504"):
        yoso_attention(same, same, torch.full((1, 1, 1000, 16), 100.0).half(), **kwargs)


def test_set_attention_backend_reaches_every_attention_layer():
    model = yoso_core.YosoForSequenceClassification(YosoConfig(**TINY, num_labels=2))
    layers = [m for m in model.modules() if hasattr(m, "backend")]
    assert len(layers) == TINY["num_hidden_layers"] and {m.backend for m in layers} == {"auto"}
    model.set_attention_backend("reference")
    assert {m.backend for m in layers} == {"reference"}


def test_position_layout_is_robertas_with_the_one_offset():
    """YOSO's position table and ids follow ``positions.POSITION_OFFSET``, as the softmax baseline's do."""
    from transformers.models.roberta.modeling_roberta import RobertaEmbeddings

    from yoso_core.positions import POSITION_OFFSET
    from yoso_core.saved import ROBERTA_POSITION_OFFSET, max_length_of
    from yoso_core.sizes import softmax_config

    config = YosoConfig(**TINY)
    n = config.max_position_embeddings
    model = YosoModel(config)
    embeddings = model.embeddings
    assert ROBERTA_POSITION_OFFSET == POSITION_OFFSET
    assert embeddings.position_embeddings.num_embeddings == n + POSITION_OFFSET
    assert embeddings.position_ids.tolist() == [list(range(POSITION_OFFSET, n + POSITION_OFFSET))]
    theirs = softmax_config("tiny", vocab_size=config.vocab_size, max_position_embeddings=n)
    assert theirs.max_position_embeddings == n + POSITION_OFFSET
    assert max_length_of(theirs) == max_length_of(model.config) == n
    # RoBERTa numbers the tokens of an unpadded input from padding_idx + 1: the same ids as ours
    ids = torch.randint(3, 99, (1, n))
    theirs_ids = RobertaEmbeddings.create_position_ids_from_input_ids(ids, padding_idx=config.pad_token_id)
    assert theirs_ids.tolist() == embeddings.position_ids.tolist()


@pytest.mark.parametrize("with_labels", [False, True])
def test_every_head_returns_its_output_as_a_tuple_without_return_dict(with_labels):
    """``return_dict=False`` gives the fields of the output object in order (loss first when given)."""
    from yoso_core.modeling import TASK_MODELS

    torch.manual_seed(0)
    ids = torch.randint(3, 99, (2, 9))
    mask = torch.ones(2, 9, dtype=torch.long)
    mask[1, 6:] = 0
    for task, model_class in TASK_MODELS.items():
        model = model_class(YosoConfig(**TINY, num_labels=3)).eval()
        inputs = {"input_ids": ids, "attention_mask": mask}
        if task == "multiple-choice":
            inputs = {k: v[:, None].expand(2, 2, 9) for k, v in inputs.items()}
        if with_labels:
            labels = {
                "mlm": {"labels": ids},
                "classification": {"labels": torch.tensor([0, 2])},
                "multiple-choice": {"labels": torch.tensor([1, 0])},
                "token-classification": {"labels": ids % 3},
                "qa": {"start_positions": torch.tensor([1, 2]), "end_positions": torch.tensor([3, 4])},
            }[task]
            inputs = {**inputs, **labels}
        flags = dict(output_hidden_states=True, output_attentions=True)
        as_dict = model(**inputs, **flags, return_dict=True)
        as_tuple = model(**inputs, **flags, return_dict=False)
        expected = as_dict.to_tuple()
        assert (as_dict.loss is not None) == with_labels
        assert len(as_tuple) == len(expected), task
        for mine, theirs in zip(as_tuple, expected):
            if isinstance(theirs, tuple):
                assert all(torch.equal(a, b) for a, b in zip(mine, theirs)), task
            else:
                assert torch.equal(mine, theirs), task


def test_every_head_passes_its_inputs_to_the_base_model_by_name():
    """Each head's ``forward`` hands the base model every input it was given, by keyword."""
    from yoso_core.modeling import TASK_MODELS

    names = ("attention_mask", "token_type_ids", "position_ids")
    for task, model_class in TASK_MODELS.items():
        model = model_class(YosoConfig(**TINY, num_labels=3)).eval()
        seen = []
        model.yoso.register_forward_pre_hook(
            lambda module, args, kwargs: seen.append((args, kwargs)), with_kwargs=True
        )
        shape = (2, 2, 7) if task == "multiple-choice" else (2, 7)
        inputs = {
            "input_ids": torch.randint(3, 99, shape),
            "attention_mask": torch.ones(shape, dtype=torch.long),
            "token_type_ids": torch.zeros(shape, dtype=torch.long),
            "position_ids": torch.arange(2, 9).expand(shape).contiguous(),
        }
        model(**inputs, output_hidden_states=True, output_attentions=False)
        ((args, kwargs),) = seen
        assert args == (), task
        for name in names:
            assert torch.equal(kwargs[name], inputs[name].reshape(-1, 7)), (task, name)
        assert kwargs["output_hidden_states"] is True and kwargs["output_attentions"] is False, task
        assert kwargs["inputs_embeds"] is None and kwargs["return_dict"] is True, task
