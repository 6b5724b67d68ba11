"""`yoso finetune` end to end on tiny configs for every task, and every bad-input path (exit 2)."""

from __future__ import annotations

import json

import pytest
import torch
import transformers
import yaml
from helpers import invoke

from yoso_core.modeling import TASK_MODELS

TINY_RUN = [
    "--model",
    "tiny",
    "--seq-len",
    "64",
    "--num-train",
    "24",
    "--num-validation",
    "8",
    "--max-steps",
    "4",
    "--batch-size",
    "4",
    "--eval-every",
    "2",
    "--save-every",
    "2",
    "--learning-rate",
    "1e-3",
    "--seed",
    "1",
]
TASK_METRICS = {
    "classification": {"loss", "accuracy", "macro_f1"},
    "token-classification": {"loss", "precision", "recall", "f1", "token_accuracy"},
    "qa": {"loss", "exact_match", "f1"},
    "multiple-choice": {"loss", "accuracy"},
}
TRANSFORMERS_CLASSES = {
    "classification": transformers.YosoForSequenceClassification,
    "token-classification": transformers.YosoForTokenClassification,
    "qa": transformers.YosoForQuestionAnswering,
    "multiple-choice": transformers.YosoForMultipleChoice,
}


pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.integration]


def read_jsonl(path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines()]


@pytest.mark.parametrize("task", list(TASK_METRICS))
def test_finetune_every_task_writes_metrics_checkpoints_and_final(tmp_path, task):
    out = tmp_path / "run"
    result = invoke("finetune", "--task", task, *TINY_RUN, "--output-dir", str(out))
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)  # stdout is machine-readable: one JSON object
    assert summary["steps"] == 4 and summary["final_dir"] == str(out / "final")
    assert set(summary["metrics"]) == TASK_METRICS[task]

    lines = read_jsonl(out / "metrics.jsonl")
    evals = [line for line in lines if line["split"] == "validation"]
    assert [line["step"] for line in evals] == [2, 4]
    assert set(evals[-1]) - {"step", "split"} == TASK_METRICS[task]
    assert evals[-1]["loss"] == pytest.approx(summary["metrics"]["loss"])
    trains = [line for line in lines if line["split"] == "train"]
    assert trains and all(line["loss"] > 0 and line["tokens_per_second"] > 0 for line in trains)
    assert trains[-1]["step"] == 4 and trains[-1]["learning_rate"] == 0.0  # linear decay to zero

    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["task"] == task and saved["max_steps"] == 4 and saved["seq_len"] == 64
    for step in (2, 4):
        ckpt = out / "checkpoints" / f"step-{step}"
        for name in ("model.safetensors", "optimizer.pt", "scheduler.pt", "rng.pt", "trainer_state.json"):
            assert (ckpt / name).is_file(), name
        assert json.loads((ckpt / "trainer_state.json").read_text())["step"] == step

    final = out / "final"
    ours = TASK_MODELS[task].from_pretrained(final)
    assert ours.config.task == task
    assert ours.config.max_position_embeddings == 64
    assert ours.config.architectures == [TASK_MODELS[task].__name__]
    theirs = TRANSFORMERS_CLASSES[task].from_pretrained(final)
    assert theirs.config.task == task
    if task in ("classification", "token-classification"):
        assert ours.config.num_labels == len(ours.config.id2label) > 1
        assert set(ours.config.label2id) == set(ours.config.id2label.values())
    tokenizer = transformers.AutoTokenizer.from_pretrained(final)
    assert tokenizer.model_max_length == 64 and tokenizer.mask_token == "<mask>"


def test_finetune_from_yaml_config_with_command_line_override(tmp_path):
    out = tmp_path / "run"
    config = tmp_path / "run.yaml"
    config.write_text(
        yaml.safe_dump(
            {
                "task": "multiple-choice",
                "model": "tiny",
                "seq-len": 64,
                "num_train": 16,
                "num_validation": 4,
                "max_steps": 5,
                "batch_size": 4,
                "eval_every": 0,
                "save_every": 0,
                "output_dir": str(out),
            }
        )
    )
    result = invoke("finetune", "--config", str(config), "--max-steps", "3")
    assert result.exit_code == 0, result.stderr
    assert json.loads(result.stdout)["steps"] == 3
    saved = yaml.safe_load((out / "config.yaml").read_text())
    assert saved["max_steps"] == 3 and saved["num_train"] == 16 and saved["task"] == "multiple-choice"
    assert [p.name for p in (out / "checkpoints").iterdir()] == ["step-3"]  # save_every 0: only the end
    assert [line["step"] for line in read_jsonl(out / "metrics.jsonl") if line["split"] == "validation"] == [
        3
    ]


def test_finetune_from_local_files_keeps_labels(tmp_path):
    train = tmp_path / "train.jsonl"
    dev = tmp_path / "dev.jsonl"
    rows = [
        {"text": f"{w} {w} {w}", "label": lab}
        for w, lab in (("good", "pos"), ("bad", "neg"), ("fine", "pos"))
    ]
    train.write_text("".join(json.dumps(r) + "\n" for r in rows * 4))
    dev.write_text("".join(json.dumps(r) + "\n" for r in rows))
    out = tmp_path / "run"
    result = invoke(
        "finetune",
        "--task",
        "classification",
        "--model",
        "tiny",
        "--train-file",
        str(train),
        "--validation-file",
        str(dev),
        "--seq-len",
        "16",
        "--max-steps",
        "2",
        "--batch-size",
        "4",
        "--vocab-size",
        "300",
        "--output-dir",
        str(out),
    )
    assert result.exit_code == 0, result.stderr
    model = TASK_MODELS["classification"].from_pretrained(out / "final")
    assert model.config.id2label == {0: "neg", 1: "pos"}
    assert model.config.vocab_size <= 300  # the tokenizer was trained on these records
    assert model.config.vocab_size == len(transformers.AutoTokenizer.from_pretrained(out / "final"))


def _bad_train_file(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text('{"text": "fine", "label": "a"}\n{"text": "no label here"}\n')
    return path


@pytest.mark.parametrize(
    "args, message",
    [
        ([], "--task is required"),
        (["--task", "mlm"], "yoso pretrain"),
        (["--task", "summarise"], "--task must be one of"),
        (["--task", "qa", "--model", "missing-dir"], "--model 'missing-dir' is neither a model size"),
        (
            ["--task", "qa", "--train-file", "missing.jsonl"],
            "--train-file: file 'missing.jsonl' does not exist",
        ),
        (["--task", "qa", "--precision", "fp16"], "--precision must be one of fp32, bf16"),
        (["--task", "qa", "--max-steps", "0"], "--max-steps must be a positive integer"),
        (["--task", "qa", "--hash-code-len", "40"], "--hash-code-len must be in [1, 16]"),
        (["--task", "qa", "--resume", "nowhere"], "--resume 'nowhere' is not a checkpoint directory"),
        (
            ["--task", "qa", "--dataset", "squad", "--train-file", "x"],
            "--train-file: file 'x' does not exist",
        ),
        (["--task", "qa", "--config", "missing.yaml"], "--config: file 'missing.yaml' does not exist"),
    ],
)
def test_bad_usage_exits_2_with_one_line(tmp_path, monkeypatch, args, message):
    monkeypatch.chdir(tmp_path)
    result = invoke("finetune", *args)
    assert result.exit_code == 2
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and message in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()  # nothing was written: it stopped before training


def test_bad_data_and_config_files_exit_2_naming_the_problem(tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "finetune",
        "--task",
        "classification",
        "--model",
        "tiny",
        "--train-file",
        str(_bad_train_file(tmp_path)),
        "--output-dir",
        str(out),
        "--max-steps",
        "1",
    )
    assert result.exit_code == 2
    assert "bad.jsonl: line 2:" in result.stderr and "label" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (out / "metrics.jsonl").exists()

    config = tmp_path / "run.yaml"
    config.write_text("task: qa\nmax_step: 3\n")
    result = invoke("finetune", "--config", str(config))
    assert result.exit_code == 2 and "unknown key 'max_step'" in result.stderr


def test_existing_checkpoints_need_resume_and_seq_len_must_fit_the_model(tmp_path):
    out = tmp_path / "run"
    args = ["finetune", "--task", "multiple-choice", *TINY_RUN, "--max-steps", "2", "--output-dir", str(out)]
    assert invoke(*args).exit_code == 0
    again = invoke(*args)
    assert again.exit_code == 2 and "--resume auto" in again.stderr
    other_batch = invoke(*args, "--resume", "auto", "--batch-size", "2")
    assert other_batch.exit_code == 2 and "resume with the same values" in other_batch.stderr

    longer = invoke(
        "finetune",
        "--task",
        "multiple-choice",
        "--model",
        str(out / "final"),
        "--seq-len",
        "128",
        "--output-dir",
        str(tmp_path / "b"),
    )
    assert (
        longer.exit_code == 2
        and "--seq-len 128 exceeds the model's max_position_embeddings 64" in longer.stderr
    )

    bare = tmp_path / "bare"
    TASK_MODELS["multiple-choice"].from_pretrained(out / "final").save_pretrained(bare)  # no tokenizer files
    no_tok = invoke(
        "finetune",
        "--task",
        "multiple-choice",
        "--model",
        str(bare),
        "--seq-len",
        "64",
        "--output-dir",
        str(tmp_path / "c"),
    )
    assert no_tok.exit_code == 2 and "holds no tokenizer" in no_tok.stderr


def test_bf16_autocast_and_gradient_accumulation(tmp_path):
    out = tmp_path / "run"
    args = ["finetune", "--task", "token-classification", *TINY_RUN, "--output-dir", str(out)]
    result = invoke(*args, "--precision", "bf16", "--gradient-accumulation-steps", "2", "--max-steps", "2")
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["steps"] == 2 and summary["train_loss"] > 0
    assert yaml.safe_load((out / "config.yaml").read_text())["precision"] == "bf16"
    state = json.loads((out / "checkpoints" / "step-2" / "trainer_state.json").read_text())
    assert state["micro_batches"] == 4  # 2 steps x 2 accumulated micro-batches
    weights = TASK_MODELS["token-classification"].from_pretrained(out / "final").classifier.weight
    assert weights.dtype == torch.float32  # autocast leaves the master weights in fp32


def test_a_non_yoso_model_directory_is_refused(tmp_path):
    # RoBERTa directories train as the softmax baseline (tests/test_softmax_baseline.py); others need convert
    other = tmp_path / "bert"
    other.mkdir()
    (other / "config.json").write_text(json.dumps({"model_type": "bert", "hidden_size": 64}))
    result = invoke("finetune", "--task", "qa", "--model", str(other), "--output-dir", str(tmp_path / "o"))
    assert result.exit_code == 2
    assert "holds a 'bert' model, not a YOSO one" in result.stderr and "yoso convert" in result.stderr
    result = invoke("predict", "--model", str(other), input="")
    assert result.exit_code == 2 and "not a YOSO one" in result.stderr


def test_a_diverging_run_stops_with_exit_1(tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "finetune",
        "--task",
        "classification",
        *TINY_RUN,
        "--learning-rate",
        "1e30",
        "--warmup-steps",
        "0",
        "--output-dir",
        str(out),
    )
    assert result.exit_code == 1
    assert "error: the training loss became nan at step 2; lower --learning-rate" in result.stderr
    assert not (out / "final").exists()


def test_resume_auto_without_checkpoints_starts_fresh(tmp_path):
    out = tmp_path / "run"
    result = invoke(
        "finetune",
        "--task",
        "qa",
        *TINY_RUN,
        "--max-steps",
        "2",
        "--output-dir",
        str(out),
        "--resume",
        "auto",
    )
    assert result.exit_code == 0, result.stderr
    summary = json.loads(result.stdout)
    assert summary["resumed_from"] is None and summary["steps"] == 2
