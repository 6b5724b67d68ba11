"""The edges of real runs: a disk that fills during a checkpoint, predict or convert; --force that
keeps what it did not write; links onto the run directory; one loader rule for damaged weights;
resumes into other labels; predict's input, pipes and cut lines; the effective config.yaml."""

from __future__ import annotations

import errno
import json
import os
import shutil
import stat
import subprocess
import sys

import pytest
import torch
from helpers import invoke, train_tiny_classifier
from safetensors.torch import load_file, save_file

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.integration]

RUN = ["--model", "tiny", "--seq-len", "32", "--num-train", "8", "--num-validation", "4"]
RUN += ["--max-steps", "2", "--batch-size", "4", "--save-every", "1", "--eval-every", "0"]


def one_error(result, *parts: str) -> str:
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1 and all(p in errors[0] for p in parts), result.stderr
    assert "Traceback" not in result.output
    return errors[0]


@pytest.fixture(scope="module")
def run(tmp_path_factory):
    """A tiny classification run (two steps, seq_len 64): its output directory."""
    out = tmp_path_factory.mktemp("cls") / "run"
    train_tiny_classifier(out)
    return out


def lines(count: int, text: str = "[MAX 1 [MIN 3 4 ] ]") -> list[str]:
    return [json.dumps({"id": f"r{i}", "text": text}) for i in range(count)]


# ---- what a run writes ---------------------------------------------------------------------------


def test_config_yaml_records_the_effective_attention_and_hash_code_len(run):
    import yaml

    saved = yaml.safe_load((run / "config.yaml").read_text())
    assert saved["attention"] == "expectation" and saved["hash_code_len"] == 8  # auto at 64 tokens


def test_every_written_file_has_the_ordinary_mode(run):
    want = 0o666 & ~_umask()
    for path in (run / "final" / "model.safetensors", run / "config.yaml", run / "metrics.jsonl"):
        assert stat.S_IMODE(path.stat().st_mode) == want, path


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


# ---- a full disk during a checkpoint --------------------------------------------------------------


def test_a_full_disk_while_checkpointing_is_one_line_and_keeps_the_last_checkpoint(tmp_path, monkeypatch):
    real_save = torch.save

    def full_at_step_2(obj, f, *args, **kwargs):
        if "step-2" in str(f):
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_save(obj, f, *args, **kwargs)

    monkeypatch.setattr(torch, "save", full_at_step_2)
    out = tmp_path / "run"
    result = invoke("finetune", "--task", "classification", *RUN, "--output-dir", str(out))
    one_error(result, "no space left on the disk holding", "checkpoint step-2", "needed", "--output-dir")
    checkpoints = out / "checkpoints"
    assert sorted(p.name for p in checkpoints.iterdir()) == ["step-1"]  # no temporary left either
    assert json.loads((checkpoints / "step-1" / "trainer_state.json").read_text())["step"] == 1
    load_file(checkpoints / "step-1" / "model.safetensors")


# ---- a final/ that links to the run directory -----------------------------------------------------


def test_a_final_link_onto_the_run_directory_is_refused_before_the_work(tmp_path):
    out = tmp_path / "run"
    out.mkdir()
    (out / "notes.txt").write_text("mine")
    (out / "final").symlink_to(out)
    result = invoke("finetune", "--task", "classification", *RUN, "--output-dir", str(out))
    one_error(result, f"{str(out / 'final')!r} is a symbolic link", "which holds it")
    assert (out / "notes.txt").read_text() == "mine" and not (out / "checkpoints").exists()


# ---- one loader rule for missing or damaged weights -----------------------------------------------


def _broken_copy(run, tmp_path, damage: str):
    broken = shutil.copytree(run / "final", tmp_path / "model")
    weights = broken / "model.safetensors"
    if damage == "missing tensor":
        tensors = load_file(weights)
        tensors.pop("yoso.encoder.layer.0.output.dense.bias")
        save_file(tensors, weights, metadata={"format": "pt"})
    elif damage == "truncated":
        os.truncate(weights, weights.stat().st_size // 2)
    else:
        os.truncate(weights, 0)
    return broken


@pytest.mark.parametrize("damage", ["missing tensor", "truncated", "empty"])
def test_finetune_predict_and_convert_refuse_damaged_weights_alike(run, tmp_path, damage):
    broken = _broken_copy(run, tmp_path, damage)
    expected = (
        "the weights lack 1 of the model's tensors"
        if damage == "missing tensor"
        else "cannot load the weights"
    )
    # a tagging head on the classifier's encoder: the head may be new, a missing encoder tensor may not
    result = invoke(
        "finetune",
        "--task",
        "token-classification",
        *RUN,
        "--model",
        str(broken),
        "--output-dir",
        str(tmp_path / "o"),
    )
    one_error(result, f"--model {str(broken)!r}: {expected}")
    result = invoke("predict", "--model", str(broken), input="\n".join(lines(2)))
    one_error(result, f"--model {str(broken)!r}: {expected}")
    result = invoke("convert", str(broken), str(tmp_path / "converted"))
    one_error(result, "yoso.encoder.layer.0.output.dense.bias" if damage == "missing tensor" else expected)
    assert not (tmp_path / "converted").exists()


def test_a_new_task_head_is_the_only_new_tensor_and_is_reported(run, tmp_path):
    result = invoke(
        "finetune",
        "--task",
        "token-classification",
        *RUN,
        "--max-steps",
        "1",
        "--model",
        str(run / "final"),
        "--output-dir",
        str(tmp_path / "tags"),
    )
    assert result.exit_code == 0, result.output
    head = "classifier.bias, classifier.weight"
    assert (
        f"the token-classification head is new: 2 tensor(s) initialised from the seed ({head})"
        in result.stderr
    )


# ---- resume into another label set ----------------------------------------------------------------


def test_resume_into_data_of_other_labels_names_both_label_sets(tmp_path):
    data = tmp_path / "train.jsonl"
    data.write_text("".join(json.dumps({"text": f"t {i}", "label": "ab"[i % 2]}) + "\n" for i in range(8)))
    out = tmp_path / "run"
    common = ["--task", "classification", *RUN, "--output-dir", str(out), "--train-file", str(data)]
    result = invoke("finetune", *common, "--max-steps", "1")
    assert result.exit_code == 0, result.output
    data.write_text("".join(json.dumps({"text": f"t {i}", "label": "abc"[i % 3]}) + "\n" for i in range(9)))
    result = invoke("finetune", *common, "--resume", "auto")
    one_error(result, "trained on the labels ['a', 'b']", "the data has ['a', 'b', 'c']")


@pytest.mark.parametrize("attention", ["expectation", "softmax"])
def test_resume_labels_are_read_from_the_checkpoints_saved_config(tmp_path, attention):
    """The checkpoint's labels come from its config (YOSO's or the softmax baseline's) as a saved
    model's do: the same set in another order fits; another set, or none to read, is told apart."""
    import transformers

    from yoso_core import YosoConfig
    from yoso_core.training.config import ConfigError
    from yoso_core.training.loop import _check_resume_labels

    labels = {0: "neg", 1: "pos", 2: "mixed"}
    config_class = transformers.RobertaConfig if attention == "softmax" else YosoConfig
    config_class(
        id2label=labels, label2id={v: k for k, v in labels.items()}, task="classification"
    ).save_pretrained(tmp_path)
    _check_resume_labels(tmp_path, "classification", ["mixed", "neg", "pos"])
    _check_resume_labels(tmp_path, "classification", None)
    _check_resume_labels(tmp_path, "token-classification", ["a", "b"])  # not a head of that task
    with pytest.raises(
        ConfigError, match=r"trained on the labels \['neg', 'pos', 'mixed'\].*\['neg', 'pos'\]"
    ):
        _check_resume_labels(tmp_path, "classification", ["pos", "neg"])
    (tmp_path / "config.json").write_text("{not json")
    _check_resume_labels(tmp_path, "classification", ["pos", "neg"])  # load_checkpoint says what is wrong


def test_resume_from_an_unreadable_optimizer_state_names_the_file(tmp_path):
    out = tmp_path / "run"
    common = ["--task", "classification", *RUN, "--output-dir", str(out)]
    result = invoke("finetune", *common, "--max-steps", "1")
    assert result.exit_code == 0, result.output
    damaged = out / "checkpoints" / "step-1" / "optimizer.pt"
    damaged.write_bytes(damaged.read_bytes()[:100])  # truncated
    result = invoke("finetune", *common, "--resume", "auto")
    line = one_error(result, f"cannot read {damaged}", "damaged or incomplete")
    assert "does not fit" not in line


# ---- predict: the input as output, pipes, full disks, cut lines, labels ---------------------------


def test_predict_refuses_to_write_over_its_input(run, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines(3)) + "\n")
    before = source.read_text()
    link = tmp_path / "same.jsonl"
    link.symlink_to(source)
    for output in (source, link):
        result = invoke(
            "predict", "--model", str(run / "final"), "--input", str(source), "--output", str(output)
        )
        one_error(result, "is the --input file")
    assert source.read_text() == before


def test_predict_under_a_full_disk_keeps_the_answers_that_fitted(run, tmp_path, monkeypatch):
    from yoso_core._io import LineFile

    written = [0]

    def full_after_five(self, data):
        if written[0] == 5:
            raise OSError(errno.ENOSPC, "No space left on device")
        written[0] += 1
        return os.write(self.fd, data)

    monkeypatch.setattr(LineFile, "_write", full_after_five)
    target = tmp_path / "out.jsonl"
    result = invoke(
        "predict",
        "--model",
        str(run / "final"),
        "--output",
        str(target),
        "--batch-size",
        "2",
        input="\n".join(lines(9)),
    )
    one_error(result, "no space left on the disk holding", f"{str(target)!r} after 5 line(s)")
    answers = [json.loads(x) for x in target.read_text().splitlines()]
    assert [a["id"] for a in answers] == [f"r{i}" for i in range(5)]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]


def test_predict_into_a_closed_pipe_exits_quietly_keeping_what_was_read(run, tmp_path):
    source = tmp_path / "in.jsonl"
    source.write_text("\n".join(lines(3000)) + "\n")
    command = (
        f"set -o pipefail; {sys.executable} -m yoso_cli.main predict --model {run / 'final'} "
        f"--input {source} --batch-size 64 | head -1"
    )
    result = subprocess.run(["bash", "-c", command], capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["id"] == "r0"
    assert result.stderr.strip() == "", result.stderr


def test_predict_warns_with_the_count_of_cut_classification_lines(run):
    long_text = "[MAX " + " ".join(str(i % 10) for i in range(300)) + " ]"
    given = lines(2) + lines(3, long_text)
    result = invoke("predict", "--model", str(run / "final"), input="\n".join(given))
    assert result.exit_code == 0, result.output
    assert len(result.stdout.splitlines()) == 5
    (warning,) = [x for x in result.stderr.splitlines() if x.startswith("warning: ")]
    assert "3 input line(s) were longer than the model's 64 tokens and were cut to fit" in warning


def test_predict_tokenizes_a_classification_line_that_fits_once(run, monkeypatch):
    """The count of cut tokens comes from the features encoding built: a line that fits the model
    is tokenized once, not a second time to measure it."""
    from yoso_core.predict import load_predictor, predict

    predictor = load_predictor(run / "final", device="cpu")
    calls = []
    tokenizer_class = type(predictor.tokenizer)
    original = tokenizer_class.__call__

    def counted(self, *args, **kwargs):
        calls.append(args[0])
        return original(self, *args, **kwargs)

    monkeypatch.setattr(tokenizer_class, "__call__", counted)
    warnings = []
    answers = list(predict(predictor, lines(5), batch_size=2, on_warning=warnings.append))
    assert len(answers) == 5 and warnings == []
    assert len(calls) == 5


def test_a_malformed_label_is_answered_and_left_out_of_the_metrics(run):
    given = [
        json.dumps({"id": "a", "text": "[MAX 1 2 ]", "label": "2"}),
        json.dumps({"id": "b", "text": "[MAX 1 3 ]", "label": [3]}),
    ]
    result = invoke("predict", "--model", str(run / "final"), input="\n".join(given))
    assert result.exit_code == 0, result.output
    assert [json.loads(x)["id"] for x in result.stdout.splitlines()] == ["a", "b"]
    assert (
        "1 line(s) carried a malformed label" in result.stderr and 'line 2: column "label"' in result.stderr
    )
    metrics = json.loads(result.stderr.splitlines()[-1])["metrics"]
    assert metrics["lines"] == 1


# ---- convert: --force keeps what it did not write; full and read-only disks -----------------------


def test_convert_force_replaces_only_what_a_conversion_writes(run, tmp_path):
    dst = tmp_path / "dst"
    result = invoke("convert", str(run / "final"), str(dst))
    assert result.exit_code == 0, result.output
    (dst / "README.md").write_text("my notes")
    (dst / "mydata").mkdir()
    (dst / "mydata" / "dev.jsonl").write_text("{}\n")
    (dst / "pytorch_model.bin").write_bytes(b"stale weights")  # a conversion's file: replaced
    result = invoke("convert", str(run / "final"), str(dst), "--force")
    assert result.exit_code == 0, result.output
    assert (dst / "README.md").read_text() == "my notes" and (dst / "mydata" / "dev.jsonl").is_file()
    assert not (dst / "pytorch_model.bin").exists() and (dst / "model.safetensors").is_file()
    assert "kept in DST (not written by a conversion): README.md, mydata" in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == ["dst"]


def test_convert_force_decides_once_what_it_keeps(run, tmp_path, monkeypatch):
    """The files --force keeps are listed once: the list reported is the list moved."""
    from yoso_core.convert import target

    dst = tmp_path / "dst"
    assert invoke("convert", str(run / "final"), str(dst)).exit_code == 0
    (dst / "README.md").write_text("my notes")
    asked: list[str] = []
    real = target.written_by_conversion

    def counted(name: str) -> bool:
        asked.append(name)
        return real(name)

    monkeypatch.setattr(target, "written_by_conversion", counted)
    result = invoke("convert", str(run / "final"), str(dst), "--force")
    assert result.exit_code == 0, result.output
    assert "kept in DST (not written by a conversion): README.md" in result.stderr
    assert (dst / "README.md").read_text() == "my notes"
    assert sorted(asked) == sorted(set(asked)) and "README.md" in asked  # each name once


def test_convert_onto_a_full_disk_is_one_line(run, tmp_path, monkeypatch):
    import safetensors
    import transformers.modeling_utils

    def full(*args, **kwargs):  # what safetensors raises when the disk fills
        message = 'IoError(Os { code: 28, kind: StorageFull, message: "No space left on device" })'
        raise safetensors.SafetensorError(f"Error while serializing: {message}")

    monkeypatch.setattr(transformers.modeling_utils, "safe_save_file", full)
    result = invoke("convert", str(run / "final"), str(tmp_path / "dst"))
    one_error(
        result, "no space left on the disk holding", "the converted model", "needed", "choose another DST"
    )
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_convert_names_a_source_file_it_cannot_read_not_the_destination(run, tmp_path, monkeypatch):
    """A SRC tokenizer file that cannot be read is a read failure of SRC, not a write failure of DST."""
    import builtins
    import io

    unreadable = run / "final" / "tokenizer.json"
    assert unreadable.is_file()
    real_open = builtins.open

    def guarded(file, *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and os.fspath(file) == str(unreadable):
            raise PermissionError(errno.EACCES, "Permission denied", str(unreadable))
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", guarded)
    monkeypatch.setattr(io, "open", guarded)
    result = invoke("convert", str(run / "final"), str(tmp_path / "dst"))
    assert result.exit_code == 1, result.output
    assert str(unreadable) in result.stderr and "Permission denied" in result.stderr
    assert "cannot write" not in result.stderr and "the converted model" not in result.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_convert_onto_a_read_only_disk_is_one_line(run, tmp_path, monkeypatch):
    real_mkdir = os.mkdir

    def read_only(path, *args, **kwargs):  # a read-only mount, as root too
        if str(path).startswith(str(tmp_path)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", read_only)
    result = invoke("convert", str(run / "final"), str(tmp_path / "dst"))
    one_error(result, "is on a read-only file system", "the converted model", "choose another DST")
    assert sorted(p.name for p in tmp_path.iterdir()) == []
