"""`yoso pretrain` end to end, then `yoso finetune` from the pretrained directory (tokenizer reused)."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
import yaml
from helpers import invoke
from safetensors.torch import load_file

from yoso_core.modeling import TASK_MODELS

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.integration]


@pytest.fixture(scope="module")
def pretrained(tmp_path_factory):
    """A tiny sampled-YOSO MLM pretrained for 4 steps on a small text file."""
    root = tmp_path_factory.mktemp("pretrain")
    corpus = root / "corpus.txt"
    corpus.write_text(
        "".join(f"Line {i} says that the value of item {i % 7} is {i * 3}.\n" for i in range(80))
    )
    out = root / "mlm"
    result = invoke(
        "pretrain",
        "--model",
        "tiny",
        "--train-file",
        str(corpus),
        "--seq-len",
        "32",
        "--max-steps",
        "4",
        "--batch-size",
        "4",
        "--eval-every",
        "2",
        "--save-every",
        "4",
        "--vocab-size",
        "300",
        "--attention",
        "sampled",
        "--num-hash",
        "8",
        "--hash-code-len",
        "6",
        "--conv-window",
        "3",
        "--output-dir",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    return out, json.loads(result.stdout), root


def test_pretrain_writes_mlm_metrics_and_a_transformers_loadable_model(pretrained):
    out, summary, _ = pretrained
    assert summary["steps"] == 4
    assert set(summary["metrics"]) == {"loss", "perplexity", "accuracy"}
    assert summary["metrics"]["perplexity"] == pytest.approx(
        torch.tensor(summary["metrics"]["loss"]).exp().item(), rel=1e-6
    )
    evals = [
        json.loads(line)
        for line in (out / "metrics.jsonl").read_text().splitlines()
        if json.loads(line)["split"] == "validation"
    ]
    assert [e["step"] for e in evals] == [2, 4] and 0 <= evals[-1]["accuracy"] <= 1
    config = yaml.safe_load((out / "config.yaml").read_text())
    assert config["task"] == "mlm" and config["attention"] == "sampled" and config["conv_window"] == 3
    ours = TASK_MODELS["mlm"].from_pretrained(out / "final")
    assert (ours.config.use_expectation, ours.config.num_hash, ours.config.hash_code_len) == (False, 8, 6)
    assert ours.config.task == "mlm" and ours.config.vocab_size <= 300
    theirs = transformers.YosoForMaskedLM.from_pretrained(out / "final")
    assert torch.equal(
        theirs.yoso.embeddings.word_embeddings.weight, ours.yoso.embeddings.word_embeddings.weight
    )
    tokenizer = transformers.AutoTokenizer.from_pretrained(out / "final")
    assert tokenizer.convert_tokens_to_ids(["<s>", "<pad>", "</s>", "<unk>", "<mask>"]) == [0, 1, 2, 3, 4]
    assert tokenizer.model_max_length == 32


def test_finetune_from_pretrained_reuses_weights_and_tokenizer(pretrained):
    out, _, root = pretrained
    data = root / "cls.jsonl"
    data.write_text(
        "".join(
            json.dumps({"text": f"item {i} is {i * 3}", "label": "even" if i % 2 == 0 else "odd"}) + "\n"
            for i in range(20)
        )
    )
    tuned = root / "cls"
    # learning rate ~0: the encoder must come out as it went in
    result = invoke(
        "finetune",
        "--task",
        "classification",
        "--model",
        str(out / "final"),
        "--train-file",
        str(data),
        "--seq-len",
        "32",
        "--max-steps",
        "1",
        "--batch-size",
        "2",
        "--learning-rate",
        "1e-12",
        "--attention",
        "expectation",
        "--output-dir",
        str(tuned),
    )
    assert result.exit_code == 0, result.stderr
    before = load_file(out / "final" / "model.safetensors")
    after = load_file(tuned / "final" / "model.safetensors")
    shared = [n for n in after if n.startswith("yoso.")]
    assert len(shared) > 10
    for name in shared:
        assert torch.allclose(before[name], after[name], atol=1e-6), name
    pretrained_tokenizer = transformers.AutoTokenizer.from_pretrained(out / "final")
    tuned_tokenizer = transformers.AutoTokenizer.from_pretrained(tuned / "final")
    assert tuned_tokenizer.get_vocab() == pretrained_tokenizer.get_vocab()
    assert tuned_tokenizer("item 5 is 15").input_ids == pretrained_tokenizer("item 5 is 15").input_ids
    config = TASK_MODELS["classification"].from_pretrained(tuned / "final").config
    assert config.task == "classification" and config.use_expectation is True  # --attention wins
    assert config.id2label == {0: "even", 1: "odd"}


def test_pretrain_resume_auto_at_the_end_is_a_no_op(pretrained):
    out, summary, _ = pretrained
    lines_before = (out / "metrics.jsonl").read_text()
    weights_before = load_file(out / "final" / "model.safetensors")
    result = invoke("pretrain", "--config", str(out / "config.yaml"), "--resume", "auto")
    assert result.exit_code == 0, result.stderr
    again = json.loads(result.stdout)
    assert again["steps"] == 4 and again["resumed_from"].endswith("step-4")
    assert again["metrics"] == summary["metrics"]  # evaluation is deterministic, sampled hashes included
    assert (out / "metrics.jsonl").read_text() == lines_before
    weights_after = load_file(out / "final" / "model.safetensors")
    assert all(torch.equal(weights_before[n], weights_after[n]) for n in weights_before)


def test_pretrain_bad_input(tmp_path):
    config = tmp_path / "run.yaml"
    config.write_text("task: qa\n")
    result = invoke("pretrain", "--config", str(config))
    assert result.exit_code == 2 and "task" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    empty = tmp_path / "empty.txt"
    empty.write_text("")
    result = invoke(
        "pretrain", "--model", "tiny", "--train-file", str(empty), "--output-dir", str(tmp_path / "o")
    )
    assert result.exit_code == 2 and "empty.txt" in result.stderr
    result = invoke("pretrain", "--mlm-probability", "1.5")
    assert result.exit_code == 2 and "--mlm-probability" in result.stderr


def test_finetune_from_a_transformers_written_directory(pretrained, tmp_path):
    out, _, _ = pretrained
    source = tmp_path / "hf"
    config = transformers.YosoConfig(
        vocab_size=300,
        hidden_size=32,
        num_hidden_layers=1,
        num_attention_heads=2,
        intermediate_size=64,
        max_position_embeddings=32,
    )
    transformers.YosoForMaskedLM(config).save_pretrained(source)
    transformers.AutoTokenizer.from_pretrained(out / "final").save_pretrained(source)
    tuned = tmp_path / "qa"
    result = invoke(
        "finetune",
        "--task",
        "qa",
        "--model",
        str(source),
        "--seq-len",
        "32",
        "--num-train",
        "8",
        "--num-validation",
        "2",
        "--max-steps",
        "2",
        "--batch-size",
        "2",
        "--output-dir",
        str(tuned),
    )
    assert result.exit_code == 0, result.stderr
    before = load_file(source / "model.safetensors")
    after = load_file(tuned / "final" / "model.safetensors")
    assert after["yoso.embeddings.word_embeddings.weight"].shape == (300, 32)
    assert not torch.equal(
        before["yoso.embeddings.word_embeddings.weight"], after["yoso.embeddings.word_embeddings.weight"]
    )  # loaded, then trained
    assert torch.allclose(
        before["yoso.embeddings.word_embeddings.weight"],
        after["yoso.embeddings.word_embeddings.weight"],
        atol=1e-2,
    )
