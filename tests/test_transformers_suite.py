"""The checks of transformers' own YOSO test suite, run on our classes and on transformers' side by side.

transformers tests its Yoso classes with a common model tester (configuration round trips,
activation checkpointing, gradients of returned hidden states and attentions, feed-forward
chunking, ...). These tests ask the same questions of our seven classes, with the same tiny
configuration (hidden size 32, 4 heads, 2 layers, dropout 0.1, batch 13 x 7 tokens with a random
padding mask), and ask them of transformers' classes too, so a check that only our classes fail
shows up as a difference between the two parametrisations.
"""

from __future__ import annotations

import copy
import json
import warnings

import pytest
import torch
import transformers
from transformers.modeling_layers import GradientCheckpointingLayer

import yoso_core

pytestmark = pytest.mark.usefixtures("one_thread")

LIBRARIES = {"ours": yoso_core, "transformers": transformers}
HEADS = (
    "YosoForMaskedLM",
    "YosoForMultipleChoice",
    "YosoForQuestionAnswering",
    "YosoForSequenceClassification",
    "YosoForTokenClassification",
)
CLASSES = ("YosoModel", *HEADS)
BATCH, SEQ, CHOICES, LABELS, TYPES = 13, 7, 4, 3, 16
SIZES = dict(
    vocab_size=99,
    hidden_size=32,
    num_hidden_layers=2,
    num_attention_heads=4,
    intermediate_size=37,
    hidden_act="gelu",
    hidden_dropout_prob=0.1,
    attention_probs_dropout_prob=0.1,
    max_position_embeddings=512,
    type_vocab_size=TYPES,
    initializer_range=0.02,
    num_labels=LABELS,
)


@pytest.fixture(autouse=True)
def _no_deprecation_noise():
    # gradient_checkpointing_enable/disable are deprecated aliases in transformers 5.x
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", FutureWarning)
        yield


def _config(lib, **overrides):
    return lib.YosoConfig(**{**SIZES, **overrides})


def _inputs(name: str, labels: bool, seed: int = 0) -> dict:
    """A padded batch as transformers' tester draws it (the last position is never padding)."""
    gen = torch.Generator().manual_seed(seed)
    ids = torch.randint(0, SIZES["vocab_size"], (BATCH, SEQ), generator=gen)
    mask = torch.randint(0, 2, (BATCH, SEQ), generator=gen)
    mask[:, -1] = 1
    types = torch.randint(0, TYPES, (BATCH, SEQ), generator=gen)
    inputs = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types}
    if name == "YosoForMultipleChoice":
        inputs = {k: v[:, None].expand(-1, CHOICES, -1).contiguous() for k, v in inputs.items()}
    if labels:
        if name == "YosoForMultipleChoice":
            inputs["labels"] = torch.randint(0, CHOICES, (BATCH,), generator=gen)
        elif name == "YosoForQuestionAnswering":
            inputs["start_positions"] = torch.randint(0, SEQ, (BATCH,), generator=gen)
            inputs["end_positions"] = torch.randint(0, SEQ, (BATCH,), generator=gen)
        elif name == "YosoForSequenceClassification":
            inputs["labels"] = torch.randint(0, LABELS, (BATCH,), generator=gen)
        elif name == "YosoForTokenClassification":
            inputs["labels"] = torch.randint(0, LABELS, (BATCH, SEQ), generator=gen)
        elif name == "YosoForMaskedLM":
            inputs["labels"] = torch.randint(0, SIZES["vocab_size"], (BATCH, SEQ), generator=gen)
    return inputs


def _count_feed_forward(layer) -> list[int]:
    """Count the calls of ``layer.feed_forward_chunk`` (one per chunk, again on each recompute)."""
    calls = []
    original = layer.feed_forward_chunk

    def counted(attention_output):
        calls.append(attention_output.shape[1])
        return original(attention_output)

    layer.feed_forward_chunk = counted
    return calls


def _checkpointing_flags(model) -> dict[str, bool]:
    modules = model.named_modules()
    return {n: m.gradient_checkpointing for n, m in modules if hasattr(m, "gradient_checkpointing")}


# --- configuration -----------------------------------------------------------------------------


@pytest.mark.parametrize("lib", list(LIBRARIES))
def test_config_with_hidden_size_32_and_default_heads_round_trips(lib, tmp_path):
    """hidden_size=32 with the default 12 heads: a config to build, edit and save, as in transformers."""
    cls = LIBRARIES[lib].YosoConfig
    config = cls(hidden_size=32)
    assert (config.hidden_size, config.num_attention_heads) == (32, 12)
    assert json.loads(config.to_json_string())["hidden_size"] == 32
    assert cls.from_dict(config.to_dict()).to_dict() == config.to_dict()
    config.to_json_file(tmp_path / "config.json")
    assert cls.from_json_file(tmp_path / "config.json").to_dict() == config.to_dict()
    config.save_pretrained(tmp_path / "saved")
    assert cls.from_pretrained(tmp_path / "saved").to_dict() == config.to_dict()
    config.save_pretrained(tmp_path / "parent" / "sub")
    assert cls.from_pretrained(tmp_path / "parent", subfolder="sub").to_dict() == config.to_dict()
    with pytest.raises(OSError):
        cls.from_pretrained(tmp_path / "missing")


@pytest.mark.parametrize("lib", list(LIBRARIES))
def test_config_common_properties_get_set_and_construct(lib):
    cls = LIBRARIES[lib].YosoConfig
    names = ("hidden_size", "num_attention_heads", "num_hidden_layers", "vocab_size")
    config = cls(hidden_size=32)
    for value, name in enumerate(names):  # 0 included: a placeholder value, as in transformers
        setattr(config, name, value)
        assert getattr(config, name) == value
        assert getattr(cls(**{name: value}), name) == value
    assert cls() is not None


@pytest.mark.parametrize("lib", list(LIBRARIES))
def test_config_num_labels_and_common_arguments(lib):
    cls = LIBRARIES[lib].YosoConfig
    config = cls(hidden_size=32, num_labels=5)
    assert len(config.id2label) == len(config.label2id) == 5
    config.num_labels = 3
    assert len(config.id2label) == len(config.label2id) == 3
    common = dict(
        return_dict=False,
        output_hidden_states=True,
        output_attentions=True,
        tie_word_embeddings=False,
        is_decoder=True,
        add_cross_attention=True,
        chunk_size_feed_forward=5,
        architectures=["BertModel"],
        finetuning_task="translation",
        id2label={0: "label"},
        label2id={"label": "0"},
        tokenizer_class="BertTokenizerFast",
        prefix="prefix",
        bos_token_id=6,
        pad_token_id=7,
        eos_token_id=8,
        sep_token_id=9,
        decoder_start_token_id=10,
        task_specific_params={"translation": "some_params"},
        problem_type="regression",
    )
    config = cls(**copy.deepcopy(common))
    wrong = {k: getattr(config, k) for k, v in common.items() if getattr(config, k) != v}
    assert not wrong
    assert cls(dtype="float16").dtype == torch.float16


# --- feed-forward chunking ----------------------------------------------------------------------


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("lib", list(LIBRARIES))
def test_feed_forward_chunking_gives_the_unchunked_outputs(lib, name):
    inputs = _inputs(name, labels=False)
    outputs = []
    for chunk in (0, 1):
        torch.manual_seed(42)
        model = getattr(LIBRARIES[lib], name)(_config(LIBRARIES[lib], chunk_size_feed_forward=chunk)).eval()
        calls = _count_feed_forward(model.base_model.encoder.layer[0])
        with torch.no_grad():
            outputs.append(model(**inputs)[0])
        assert calls == ([SEQ] if chunk == 0 else [1] * SEQ)  # one call per chunk of positions
    torch.testing.assert_close(outputs[1], outputs[0], rtol=1e-5, atol=1e-6)


# --- activation (gradient) checkpointing --------------------------------------------------------


@pytest.mark.parametrize("name", CLASSES)
@pytest.mark.parametrize("lib", list(LIBRARIES))
def test_gradient_checkpointing_enable_disable(lib, name):
    model = getattr(LIBRARIES[lib], name)(_config(LIBRARIES[lib]))
    layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
    assert len(layers) == SIZES["num_hidden_layers"], (
        "layers must be transformers' GradientCheckpointingLayer"
    )
    assert not model.is_gradient_checkpointing
    model.gradient_checkpointing_enable()
    assert model.is_gradient_checkpointing
    flags = {
        n: m.gradient_checkpointing for n, m in model.named_modules() if hasattr(m, "gradient_checkpointing")
    }
    assert flags and all(flags.values()), flags
    model.gradient_checkpointing_disable()
    assert not model.is_gradient_checkpointing
    flags = {
        n: m.gradient_checkpointing for n, m in model.named_modules() if hasattr(m, "gradient_checkpointing")
    }
    assert not any(flags.values()), flags
    model.gradient_checkpointing_enable(every_n_layers=2)  # transformers' layer selection
    assert [layer.gradient_checkpointing for layer in layers] == [True, False]


CHECKPOINT_KWARGS = {
    "default": None,
    "reentrant": {"use_reentrant": True},
    "non-reentrant": {"use_reentrant": False},
}


@pytest.mark.parametrize("kwargs", list(CHECKPOINT_KWARGS))
@pytest.mark.parametrize("name", HEADS)
@pytest.mark.parametrize("lib", list(LIBRARIES))
def test_training_with_gradient_checkpointing(lib, name, kwargs):
    """Checkpointed training recomputes the layers and gives the gradients of the plain run."""
    config = _config(LIBRARIES[lib], hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    inputs = _inputs(name, labels=True)
    torch.manual_seed(42)
    model = getattr(LIBRARIES[lib], name)(config).train()
    model(**inputs).loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters() if p.grad is not None}
    model.zero_grad(set_to_none=True)

    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=CHECKPOINT_KWARGS[kwargs])
    layer = next(m for m in model.modules() if isinstance(m, GradientCheckpointingLayer))
    expected = {"use_reentrant": False} if kwargs == "default" else CHECKPOINT_KWARGS[kwargs]
    assert layer._gradient_checkpointing_func.keywords == expected  # the kwargs reach the layers
    calls = _count_feed_forward(layer)
    grad_fns = []
    layer.register_forward_hook(lambda module, args, out: grad_fns.append(type(out[0].grad_fn).__name__))
    loss = model(**inputs).loss
    assert len(calls) == 1
    loss.backward()
    assert len(calls) == 2, "the checkpointed layer was not recomputed in the backward"
    assert ("CheckpointFunction" in grad_fns[0]) == (kwargs == "reentrant"), grad_fns
    torch.optim.SGD(model.parameters(), lr=0.01).step()

    missing = [n for n, p in model.named_parameters() if p.requires_grad and p.grad is None]
    assert not missing
    nonzero = {n for n, g in plain.items() if g.abs().sum() > 0}
    assert {n for n, p in model.named_parameters() if n in plain and p.grad.abs().sum() > 0} == nonzero
    for n, g in plain.items():
        torch.testing.assert_close(dict(model.named_parameters())[n].grad, g, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("kwargs", ["reentrant", "non-reentrant"])
def test_checkpointed_sampled_attention_recomputes_the_same_hashes(kwargs):
    """Sampled YOSO draws its hash functions from torch's RNG; the recompute must draw the same ones."""
    config = _config(
        yoso_core,
        hidden_dropout_prob=0.0,
        attention_probs_dropout_prob=0.0,
        use_expectation=False,
        num_hash=8,
        hash_code_len=4,
    )
    inputs = _inputs("YosoForSequenceClassification", labels=True)
    model = yoso_core.YosoForSequenceClassification(config).train()
    torch.manual_seed(5)
    model(**inputs).loss.backward()
    plain = {n: p.grad.clone() for n, p in model.named_parameters()}
    model.zero_grad(set_to_none=True)
    model.gradient_checkpointing_enable(gradient_checkpointing_kwargs=CHECKPOINT_KWARGS[kwargs])
    torch.manual_seed(5)
    model(**inputs).loss.backward()
    for n, p in model.named_parameters():
        torch.testing.assert_close(p.grad, plain[n], rtol=1e-5, atol=1e-6, msg=lambda m, n=n: f"{n}: {m}")


def test_checkpointed_ours_equal_transformers_unpadded(tmp_path):
    """Side by side: our checkpointed classification model has transformers' (plain) gradients."""
    config = _config(transformers, hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0)
    theirs = transformers.YosoForSequenceClassification(config).train()
    theirs.save_pretrained(tmp_path)
    ours = yoso_core.YosoForSequenceClassification.from_pretrained(tmp_path).train()
    ours.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": True})
    inputs = _inputs("YosoForSequenceClassification", labels=True)
    inputs.pop("attention_mask")  # transformers ignores padding; compare where it is right
    loss_theirs, loss_ours = theirs(**inputs).loss, ours(**inputs).loss
    torch.testing.assert_close(loss_ours, loss_theirs, rtol=0, atol=1e-5)
    loss_theirs.backward()
    loss_ours.backward()
    grads = dict(theirs.named_parameters())
    for n, p in ours.named_parameters():
        torch.testing.assert_close(p.grad, grads[n].grad, rtol=0, atol=1e-4, msg=lambda m, n=n: f"{n}: {m}")


# --- gradients of returned hidden states and attentions -----------------------------------------


@pytest.mark.parametrize("lib", list(LIBRARIES))
def test_retain_grad_hidden_states_attentions(lib):
    config = _config(LIBRARIES[lib], output_hidden_states=True, output_attentions=True)
    model = LIBRARIES[lib].YosoModel(config)
    outputs = model(**_inputs("YosoModel", labels=False))
    hidden_states, attentions = outputs.hidden_states[0], outputs.attentions[0]
    hidden_states.retain_grad()
    attentions.retain_grad()
    outputs[0].flatten()[0].backward(retain_graph=True)
    assert hidden_states.grad is not None
    assert attentions.grad is not None
    assert hidden_states.grad.abs().sum() > 0 and attentions.grad.abs().sum() > 0
