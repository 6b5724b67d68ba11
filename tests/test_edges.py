"""The edges that must hold without a model run: full and read-only disks, links that enclose their
folder, non-finite options, directories where files belong, local tokenizer paths, python -m."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
import time

import pytest
from helpers import invoke

from yoso_core import _io
from yoso_core.training import ConfigError, merge_config


def one_error(result, *parts: str) -> str:
    """The single ``error:`` line of a command that exited 2, holding every part."""
    assert result.exit_code == 2, (result.exit_code, result.output, result.exception)
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert all(p in lines[0] for p in parts), lines[0]
    assert "Traceback" not in result.output
    return lines[0]


# ---- the kernel cache on a read-only disk --------------------------------------------------------


def test_read_only_kernel_dir_is_one_error_line(tmp_path, monkeypatch):
    root = tmp_path / "kernels"
    root.mkdir()
    real_mkdir = os.mkdir

    def read_only(path, *args, **kwargs):  # a read-only mount, as root too
        if str(path).startswith(str(root)):
            raise OSError(errno.EROFS, "Read-only file system", str(path))
        return real_mkdir(path, *args, **kwargs)

    monkeypatch.setattr(os, "mkdir", read_only)
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(root))
    result = invoke("build-kernels", "--no-cuda")
    one_error(result, f"$YOSO_KERNEL_DIR {str(root)!r} is on a read-only file system", "set YOSO_KERNEL_DIR")


# ---- _io: full disks, modes, links ---------------------------------------------------------------


def test_line_file_keeps_the_whole_lines_written_before_the_disk_filled(tmp_path, monkeypatch):
    target = tmp_path / "out.jsonl"
    budget = [25]  # bytes the disk still takes

    def small_disk(self, data):
        if budget[0] <= 0:
            raise OSError(errno.ENOSPC, "No space left on device")
        n = min(len(data), budget[0])
        budget[0] -= n
        return os.write(self.fd, data[:n])

    monkeypatch.setattr(_io.LineFile, "_write", small_disk)
    sink = _io.LineFile(target)
    sink.write_line('{"n": 1}')  # 9 bytes
    sink.write_line('{"n": 2}')  # 18
    with pytest.raises(_io.StorageError, match=r"no space left on the disk holding .* after 2 line\(s\)"):
        sink.write_line('{"n": 3333}')  # 12 more: only 7 fit
    sink.close()
    assert target.read_text() == '{"n": 1}\n{"n": 2}\n'
    assert sorted(p.name for p in tmp_path.iterdir()) == ["out.jsonl"]
    assert stat.S_IMODE(target.stat().st_mode) == 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def test_written_files_get_the_ordinary_mode(tmp_path):
    _io.atomic_write_text(tmp_path / "config.yaml", "a: 1\n")
    with _io.staged_dir(tmp_path / "model") as tmp:
        fd = os.open(tmp / "model.safetensors", os.O_WRONLY | os.O_CREAT, 0o600)  # as safetensors does
        os.close(fd)
    want = 0o666 & ~_umask()
    assert stat.S_IMODE((tmp_path / "config.yaml").stat().st_mode) == want
    assert stat.S_IMODE((tmp_path / "model" / "model.safetensors").stat().st_mode) == want


def test_a_link_to_its_own_folder_is_never_replaced(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text("{}\n")
    (run / "final").symlink_to(run)
    (run / "up").symlink_to(tmp_path)
    for link in (run / "final", run / "up"):
        with pytest.raises(_io.StorageError, match="is a symbolic link to .* which holds it"):
            with _io.staged_dir(link) as tmp:
                (tmp / "config.json").write_text("{}")
    assert (run / "metrics.jsonl").read_text() == "{}\n" and (run / "final").is_symlink()
    (run / "elsewhere").mkdir()
    (run / "ok").symlink_to(run / "elsewhere")
    _io.check_not_enclosing(run / "ok")  # a link to a folder of its own is fine


def test_staged_dir_keeps_what_the_block_did_not_write(tmp_path):
    target = tmp_path / "model"
    (target / "mydata").mkdir(parents=True)
    (target / "README.md").write_text("notes")
    (target / "config.json").write_text("old")
    with _io.staged_dir(target, keep=lambda name: name != "config.json") as tmp:
        (tmp / "config.json").write_text("new")
    assert sorted(p.name for p in target.iterdir()) == ["README.md", "config.json", "mydata"]
    assert (target / "config.json").read_text() == "new" and (target / "README.md").read_text() == "notes"


def test_failed_writes_are_described_with_the_disk_and_the_fix(tmp_path):
    torch_full = RuntimeError(
        "[enforce fail at inline_container.cc:664] . PytorchStreamWriter failed writing file"
    )
    message = _io.describe_write_failure(
        torch_full, tmp_path, "checkpoint step-2", "choose another --output-dir", 1 << 60
    )
    assert message.startswith(f"no space left on the disk holding {str(tmp_path)!r} (mounted at ")
    assert "needed" in message and message.endswith("choose another --output-dir")
    # what torch said on a real full tmpfs: no errno, a position check that failed
    torch_short = RuntimeError("[enforce fail at inline_container.cc:672] . unexpected pos 80704 vs 80592")
    message = _io.describe_write_failure(torch_short, tmp_path, "checkpoint step-1", "fix", 1 << 60)
    assert message.startswith("no space left on the disk holding")
    read_only = OSError(errno.EROFS, "Read-only file system")
    assert "read-only file system" in _io.describe_write_failure(read_only, tmp_path, "x", "fix")
    assert _io.describe_write_failure(ValueError("not a write"), tmp_path, "x", "fix") is None


def test_only_out_of_space_errors_are_called_a_full_disk(tmp_path):
    """Little free space makes a full disk of a write failure without errno only: another error
    (one that is not a write's, or a real I/O error) is never relabelled."""
    needed = 1 << 60  # more than any disk holds
    assert _io.describe_write_failure(RuntimeError("shape mismatch"), tmp_path, "x", "fix", needed) is None
    io_error = OSError(errno.EIO, "Input/output error")
    message = _io.describe_write_failure(io_error, tmp_path, "x", "fix", needed)
    assert message == f"cannot write x in {str(tmp_path)!r} (Input/output error); fix"
    full = OSError(errno.ENOSPC, "No space left on device")
    assert _io.describe_write_failure(full, tmp_path, "x", "fix").startswith("no space left on the disk")
    with (
        pytest.raises(RuntimeError, match="shape mismatch"),
        _io.storage_errors(tmp_path, "x", "fix", needed),
    ):
        raise RuntimeError("shape mismatch")


# ---- options: non-finite numbers, directories, tokenizer paths -----------------------------------


@pytest.mark.parametrize("name", ["learning_rate", "weight_decay", "max_grad_norm", "adam_epsilon"])
@pytest.mark.parametrize("value", [float("nan"), float("inf")])
def test_non_finite_float_options_are_refused(name, value):
    with pytest.raises(ConfigError, match=f"--{name.replace('_', '-')} must be a finite number, got {value}"):
        merge_config(None, {"model": "tiny", name: value})


def test_non_finite_flags_are_one_error_line_before_the_work(monkeypatch):
    import yoso_core.training as training

    monkeypatch.setattr(training, "train", lambda config: pytest.fail("trained"))
    for flag, value in (("--max-grad-norm", "nan"), ("--learning-rate", "inf"), ("--weight-decay", "nan")):
        result = invoke("finetune", "--task", "qa", "--model", "tiny", flag, value)
        one_error(result, f"{flag} must be a finite number")


def test_a_directory_where_a_file_belongs_is_named_a_directory(tmp_path):
    with pytest.raises(ConfigError, match=f"--config: {str(tmp_path)!r} is a directory, not a file"):
        merge_config(tmp_path, {})
    with pytest.raises(ConfigError, match=f"--train-file: {str(tmp_path)!r} is a directory, not a file"):
        merge_config(None, {"model": "tiny", "train_file": str(tmp_path)})


def test_a_local_tokenizer_path_is_checked_before_the_hub(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    (tmp_path / "runs").mkdir()
    for name in (str(tmp_path / "no-such-tokenizer"), "runs/tok", "./tok", "a/b/c"):
        start = time.perf_counter()
        with pytest.raises(ConfigError, match=f"--tokenizer {name!r} does not exist"):
            merge_config(None, {"model": "tiny", "tokenizer": name})
        assert time.perf_counter() - start < 2
    with pytest.raises(ConfigError, match="is a directory without tokenizer files"):
        merge_config(None, {"model": "tiny", "tokenizer": "runs"})
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ConfigError, match="the hub is off"):
        merge_config(None, {"model": "tiny", "tokenizer": "org/name"})


# ---- encoding: the stride's own error, cut inputs counted -----------------------------------------


@pytest.fixture(scope="module")
def tokenizer():
    from yoso_core.data import build_tokenizer

    texts = ["the pass key is 12345 remember it", "what is the pass key"] * 50
    return build_tokenizer(texts, vocab_size=300, max_length=64)


def test_a_stride_too_large_is_blamed_on_the_stride(tokenizer):
    from yoso_core.data import DataError, encode

    record = {"question": "What is the pass key?", "context": "the pass key is 12345. " * 40}
    with pytest.raises(DataError, match=r"record 1: the stride 60 leaves no room .* use a stride below"):
        encode("qa", [record], tokenizer, seq_len=64, stride=60)


def test_cut_tokens_counts_what_classification_and_multiple_choice_drop(tokenizer):
    """Each feature's ``cut_tokens`` is what its record lost: the tokens past ``seq_len``."""
    from yoso_core.data import encode

    def cut(task, record, seq_len=64):
        (feature,) = encode(task, [record], tokenizer, seq_len=seq_len)
        return feature["cut_tokens"]

    long = {"text": "the pass key is 12345 " * 40}
    whole = len(tokenizer(long["text"])["input_ids"])
    assert cut("classification", long) == whole - 64 > 0
    assert cut("classification", long, seq_len=whole) == 0
    assert cut("classification", {"text": "the pass key"}) == 0
    choices = {"context": "the pass key " * 30, "choices": ["is", "remember it " * 20]}
    longest = max(len(tokenizer(choices["context"], c)["input_ids"]) for c in choices["choices"])
    assert cut("multiple-choice", choices) == longest - 64 > 0


def test_a_malformed_label_in_predict_input_does_not_reject_the_line():
    from yoso_core.data import parse_predict_line
    from yoso_core.data.predict_input import LABEL_ERROR

    line = '{"question": "q?", "context": "abc", "answers": {"text": ["b"], "answer_start": [0]}}'
    record = parse_predict_line("qa", line, 3)
    assert record["question"] == "q?" and "answers" not in record
    assert "line 3: answer 'b' is not found at answer_start 0" in record[LABEL_ERROR]


# ---- python -m yoso_cli ----------------------------------------------------------------------------


def test_python_dash_m_yoso_cli_runs_the_command():
    result = subprocess.run(
        [sys.executable, "-m", "yoso_cli", "--help"], capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr
    assert "Usage: yoso" in result.stdout and "finetune" in result.stdout
