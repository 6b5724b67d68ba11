"""The softmax baseline (`--attention softmax`): RoBERTa classes trained by the same commands.

End to end: train a tiny softmax model for a few steps, serve it with `yoso predict`, time it with
`yoso bench --model-level`, convert it to YOSO with `yoso convert --from roberta`; its padding is
exact; options that do not fit it fail with one line and exit code 2.
"""

from __future__ import annotations

import json
from functools import partial

import pytest
import torch
import transformers
from helpers import invoke as _invoke

from yoso_core.saved import SOFTMAX_MODELS
from yoso_core.training import merge_config, train

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.integration]

TINY = dict(
    model="tiny",
    seq_len=48,
    num_train=16,
    num_validation=4,
    max_steps=3,
    batch_size=4,
    eval_every=0,
    save_every=0,
    learning_rate=1e-3,
    seed=0,
    attention="softmax",
)

invoke = partial(_invoke, catch_exceptions=False)  # a crash shows its traceback


@pytest.fixture(scope="module")
def softmax_qa(tmp_path_factory):
    """A tiny softmax QA model trained for three steps: (result, output dir)."""
    out = tmp_path_factory.mktemp("softmax") / "qa"
    result = train(merge_config(None, {**TINY, "output_dir": str(out)}, task="qa"))
    return result, out


def test_softmax_trains_a_roberta_directory(softmax_qa):
    result, out = softmax_qa
    assert isinstance(result.model, transformers.RobertaForQuestionAnswering)
    assert result.model.config._attn_implementation == "sdpa"
    saved = json.loads((out / "final" / "config.json").read_text())
    assert saved["model_type"] == "roberta" and saved["task"] == "qa"
    assert saved["architectures"] == ["RobertaForQuestionAnswering"]
    assert saved["max_position_embeddings"] == 48 + 2  # RoBERTa's two offset rows
    assert (saved["hidden_size"], saved["num_hidden_layers"], saved["num_attention_heads"]) == (64, 2, 2)
    assert {"loss", "exact_match", "f1"} <= set(result.metrics)
    assert (out / "checkpoints" / "step-3" / "trainer_state.json").is_file()
    again = transformers.RobertaForQuestionAnswering.from_pretrained(str(out / "final"))
    for (name, a), b in zip(result.model.state_dict().items(), again.state_dict().values(), strict=True):
        assert torch.equal(a, b), name


def test_predict_serves_the_softmax_model(softmax_qa):
    _, out = softmax_qa
    line = json.dumps({"id": "a", "question": "What is the pass key?", "context": "The pass key is 12345."})
    result = invoke("predict", "--model", str(out / "final"), input=line + "\n")
    assert result.exit_code == 0, result.stderr
    answer = json.loads(result.stdout.splitlines()[0])
    assert answer["id"] == "a" and set(answer) >= {"answer", "start", "end", "score"}


def test_softmax_mlm_predicts_and_converts_to_yoso(tmp_path):
    """Pretrain a softmax MLM, fill a mask with `yoso predict`, warm-start YOSO from it, fine-tune."""
    from yoso_core import YosoForMaskedLM

    out = tmp_path / "mlm"
    options = {**TINY, "vocab_size": 300, "num_train": 40, "output_dir": str(out)}
    result = invoke("pretrain", *[f"--{k.replace('_', '-')}={v}" for k, v in options.items()])
    assert result.exit_code == 0, result.stderr
    assert json.loads((out / "final" / "config.json").read_text())["architectures"] == ["RobertaForMaskedLM"]
    line = json.dumps({"text": "The <mask> of the function."})
    served = invoke("predict", "--model", str(out / "final"), input=line + "\n")
    assert served.exit_code == 0, served.stderr
    assert json.loads(served.stdout.splitlines()[0])["fills"]
    dst = tmp_path / "yoso"
    result = invoke("convert", str(out / "final"), str(dst), "--from", "roberta")
    assert result.exit_code == 0, result.stderr
    yoso = YosoForMaskedLM.from_pretrained(str(dst))
    assert yoso.config.max_position_embeddings == 48
    theirs = transformers.RobertaForMaskedLM.from_pretrained(str(out / "final"))
    assert torch.equal(
        yoso.yoso.embeddings.position_embeddings.weight, theirs.roberta.embeddings.position_embeddings.weight
    )
    assert torch.equal(
        yoso.yoso.encoder.layer[1].attention.self.query.weight,
        theirs.roberta.encoder.layer[1].attention.self.query.weight,
    )
    # and fine-tuning continues from it with sampled YOSO attention
    run = train(
        merge_config(
            None,
            {
                **TINY,
                "model": str(dst),
                "attention": "sampled",
                "num_hash": 8,
                "output_dir": str(tmp_path / "ft"),
            },
            task="qa",
        )
    )
    assert run.model.config.use_expectation is False and run.steps == 3


def test_softmax_qa_converts_to_a_yoso_qa_model_with_its_head(softmax_qa, tmp_path):
    """The task head carries over: the converted model is a YOSO QA model that predict serves."""
    from yoso_core import YosoForQuestionAnswering

    _, out = softmax_qa
    dst = tmp_path / "yoso-qa"
    result = invoke("convert", str(out / "final"), str(dst), "--from", "roberta")
    assert result.exit_code == 0, result.stderr
    yoso = YosoForQuestionAnswering.from_pretrained(str(dst))
    theirs = transformers.RobertaForQuestionAnswering.from_pretrained(str(out / "final"))
    assert torch.equal(yoso.qa_outputs.weight, theirs.qa_outputs.weight)
    assert torch.equal(yoso.qa_outputs.bias, theirs.qa_outputs.bias)
    line = json.dumps({"question": "What is the pass key?", "context": "The pass key is 12345."})
    served = invoke("predict", "--model", str(dst), input=line + "\n")
    assert served.exit_code == 0, served.stderr
    assert set(json.loads(served.stdout.splitlines()[0])) >= {"answer", "start", "end", "score"}


@pytest.mark.parametrize(
    "arch",
    ["RobertaForSequenceClassification", "RobertaForTokenClassification", "RobertaForMultipleChoice"],
)
def test_roberta_task_heads_convert(arch, tmp_path):
    """Classification, tagging and multiple-choice heads map onto YOSO's with their labels."""
    import yoso_core
    from yoso_core.convert import ROBERTA_HEADS, ConvertOptions, convert

    config = transformers.RobertaConfig(
        vocab_size=99,
        hidden_size=32,
        num_hidden_layers=2,
        num_attention_heads=4,
        intermediate_size=37,
        max_position_embeddings=42,
        num_labels=3,
        id2label={0: "a", 1: "b", 2: "c"},
        label2id={"a": 0, "b": 1, "c": 2},
    )
    torch.manual_seed(0)
    getattr(transformers, arch)(config).save_pretrained(tmp_path / "src")
    convert(tmp_path / "src", tmp_path / "dst", ConvertOptions(source="roberta"))
    target = ROBERTA_HEADS[arch][0]
    ours = getattr(yoso_core, target).from_pretrained(str(tmp_path / "dst"))
    theirs = getattr(transformers, arch).from_pretrained(str(tmp_path / "src"))
    assert type(ours).__name__ == target
    mine, source = ours.state_dict(), theirs.state_dict()
    if arch == "RobertaForMultipleChoice":
        assert torch.equal(mine["pre_classifier.weight"], source["roberta.pooler.dense.weight"])
    else:
        assert ours.config.id2label == {0: "a", 1: "b", 2: "c"}
    for key in [k for k in source if k.startswith(("classifier", "qa_outputs"))]:
        assert torch.equal(mine[key], source[key]), key


def test_bench_times_the_softmax_directory(softmax_qa):
    from yoso_core.bench import BenchConfig, model_config

    _, out = softmax_qa
    cfg = BenchConfig(seq_len=[32], model_level=True, model=str(out / "final"))
    cfg.check()
    config = model_config(cfg, 32)
    assert (config.hidden_size, config.num_hidden_layers, config.max_position_embeddings) == (64, 2, 48)


@pytest.mark.parametrize("task", sorted(SOFTMAX_MODELS))
def test_padding_is_exact_for_every_softmax_head(task, tmp_path):
    """Padded tokens do not change the real tokens' outputs (right padding, SDPA mask)."""
    from yoso_core.sizes import softmax_config

    cls = getattr(transformers, SOFTMAX_MODELS[task])
    labels = 2 if task == "qa" else 3
    config = softmax_config("tiny", vocab_size=50, max_position_embeddings=32, num_labels=labels)
    model = cls._from_config(config, attn_implementation="sdpa").eval()
    torch.manual_seed(1)
    shape = (2, 3) if task == "multiple-choice" else (2,)
    ids = torch.randint(5, 50, (*shape, 20))
    mask = torch.ones_like(ids)
    mask[..., 12:] = 0
    padded = ids.masked_fill(mask == 0, config.pad_token_id)
    noise = padded.clone()
    noise[..., 12:] = torch.randint(5, 50, noise[..., 12:].shape)  # other ids under the padding mask
    with torch.no_grad():
        short = model(input_ids=ids[..., :12], attention_mask=mask[..., :12])
        long = model(input_ids=padded, attention_mask=mask)
        other = model(input_ids=noise, attention_mask=mask)
    for key in ("logits", "start_logits"):
        if key not in short:
            continue
        a, b, c = short[key], long[key], other[key]
        if a.dim() >= 2 and task not in ("classification", "multiple-choice"):
            b, c = b[:, :12], c[:, :12]
        torch.testing.assert_close(a, b, atol=1e-5, rtol=1e-5)
        torch.testing.assert_close(b, c, atol=1e-5, rtol=1e-5)


def test_softmax_with_yoso_options_fails_with_one_line(tmp_path):
    result = invoke(
        "finetune", "--task", "qa", "--attention", "softmax", "--num-hash", "8", "--max-steps", "1",
        "--output-dir", str(tmp_path / "x"), "--num-train", "4", "--num-validation", "2", "--seq-len", "32",
    )  # fmt: skip
    assert result.exit_code == 2
    assert "--num-hash" in result.stderr and "softmax" in result.stderr
    assert not (tmp_path / "x" / "final").exists()


def test_unknown_attention_fails_with_one_line(tmp_path):
    result = invoke("pretrain", "--attention", "linear", "--output-dir", str(tmp_path / "x"))
    assert (
        result.exit_code == 2 and "--attention must be one of sampled, expectation, softmax" in result.stderr
    )


def test_sampled_on_a_softmax_directory_says_convert(softmax_qa, tmp_path):
    _, out = softmax_qa
    result = invoke(
        "finetune", "--task", "qa", "--model", str(out / "final"), "--attention", "sampled",
        "--max-steps", "1", "--output-dir", str(tmp_path / "y"),
    )  # fmt: skip
    assert result.exit_code == 2 and "yoso convert" in result.stderr


def test_the_older_flags_still_select_the_attention():
    assert merge_config(None, {"use_expectation": False}, task="mlm").attention == "sampled"
    assert merge_config(None, {"use_expectation": True}, task="mlm").attention == "expectation"
