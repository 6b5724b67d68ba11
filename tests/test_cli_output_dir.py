"""The output directory of `yoso pretrain` / `yoso finetune`: locked per run, swept of what dead runs
left, symlinks followed, and every unusable directory or resume refused before the work starts."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys

import pytest
from typer.testing import CliRunner

from yoso_cli.main import app
from yoso_core.training import config as config_module
from yoso_core.training import lock as lock_module

pytestmark = [pytest.mark.usefixtures("one_thread"), pytest.mark.integration]

RUN = [
    "--task",
    "classification",
    "--model",
    "tiny",
    "--seq-len",
    "32",
    "--num-train",
    "8",
    "--num-validation",
    "4",
    "--max-steps",
    "2",
    "--batch-size",
    "4",
    "--save-every",
    "1",
    "--eval-every",
    "0",
]


def finetune(out, *extra: str):
    return CliRunner().invoke(app, ["finetune", *RUN, "--output-dir", str(out), *extra])


def one_error_line(result, *words: str) -> str:
    """Assert exit 2 with exactly one ``error:`` line holding ``words`` and no traceback; return it."""
    assert result.exit_code == 2, (result.exit_code, result.output)
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1 and "Traceback" not in result.output, result.output
    for word in words:
        assert word in errors[0], errors[0]
    return errors[0]


def _dead_pid() -> int:
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    return child.pid


def test_a_second_run_into_a_locked_output_dir_exits_2_naming_the_holder(tmp_path):
    out = tmp_path / "run"
    hold = (
        "import sys, time; from yoso_core.training.lock import lock_output_dir; "
        f"lock = lock_output_dir({str(out)!r}); print('locked', flush=True); time.sleep(600)"
    )
    holder = subprocess.Popen([sys.executable, "-c", hold], stdout=subprocess.PIPE, text=True)
    try:
        assert holder.stdout.readline().strip() == "locked"
        second = finetune(out)
        one_error_line(second, "is in use by another training run", f"pid {holder.pid}")
        assert sorted(p.name for p in out.iterdir()) == [".lock"]  # the second run wrote nothing
    finally:
        holder.send_signal(signal.SIGKILL)
        holder.wait()
    # the holder died without releasing: its lock file (with its pid) stays, and is taken over
    assert json.loads((out / ".lock").read_text())["pid"] == holder.pid
    result = finetune(out)
    assert result.exit_code == 0, result.output
    assert (out / "final" / "config.json").is_file() and not (out / ".lock").exists()


def test_locks_exclude_each_other_in_one_process_and_are_released(tmp_path):
    first = lock_module.lock_output_dir(tmp_path / "run")
    with pytest.raises(lock_module.OutputDirLocked, match=f"pid {os.getpid()}"):
        lock_module.lock_output_dir(tmp_path / "run")
    first.release()
    assert not (tmp_path / "run").exists()  # made by the lock and left empty: removed again
    again = lock_module.lock_output_dir(tmp_path / "run")
    again.release()


def test_stale_temporaries_of_dead_runs_are_swept_at_start(tmp_path):
    out = tmp_path / "run"
    dead = _dead_pid()
    stale = [out / f".tmp-final-{dead}", out / "checkpoints" / f".tmp-step-7-{dead}"]
    for path in stale:
        path.mkdir(parents=True)
        (path / "model.safetensors").write_bytes(b"\0" * 4096)
    result = finetune(out)
    assert result.exit_code == 0, result.output
    assert not any(path.exists() for path in stale)
    assert not [p.name for p in out.rglob(".tmp-*")] and not [p.name for p in out.rglob(".old-*")]


def test_a_symlinked_final_dir_has_its_target_replaced(tmp_path):
    out = tmp_path / "run"
    elsewhere = tmp_path / "models" / "current"
    elsewhere.mkdir(parents=True)
    (elsewhere / "old-weights.bin").write_bytes(b"old")
    out.mkdir()
    (out / "final").symlink_to(elsewhere)
    result = finetune(out)
    assert result.exit_code == 0, result.output
    assert (out / "final").is_symlink() and (out / "final").resolve() == elsewhere
    assert (elsewhere / "config.json").is_file() and not (elsewhere / "old-weights.bin").exists()
    assert sorted(p.name for p in elsewhere.parent.iterdir()) == ["current"]


def test_an_output_dir_that_is_a_file_or_read_only_is_one_error_line(tmp_path, monkeypatch):
    blocker = tmp_path / "taken"
    blocker.write_text("not a directory")
    one_error_line(finetune(blocker), "is a file", "--output-dir")
    one_error_line(finetune(blocker / "run"), "cannot be created", "--output-dir")

    read_only = tmp_path / "ro"
    read_only.mkdir()
    read_only.chmod(0o555)
    if os.geteuid() == 0:  # mode bits do not bind root: make the check see them
        real_access = os.access
        monkeypatch.setattr(
            lock_module.os,
            "access",
            lambda path, mode: (os.stat(path).st_mode & 0o222) != 0 and real_access(path, mode),
        )
    try:
        one_error_line(finetune(read_only), "is not writable", "--output-dir")
    finally:
        read_only.chmod(0o755)
    assert list(read_only.iterdir()) == []


def test_device_cuda_without_a_gpu_is_one_error_line(tmp_path, monkeypatch):
    monkeypatch.setattr(config_module, "_cuda_available", lambda: False)
    one_error_line(finetune(tmp_path / "run", "--device", "cuda"), "--device cuda", "--device cpu")
    assert not (tmp_path / "run").exists()


def test_resume_with_another_seq_len_or_task_is_refused_before_the_work(tmp_path, monkeypatch):
    out = tmp_path / "run"
    assert finetune(out, "--max-steps", "1").exit_code == 0
    checkpoint = out / "checkpoints" / "step-1"
    before = sorted(p.name for p in out.iterdir())
    from yoso_core import data

    def no_data(*args, **kwargs):
        raise AssertionError("the data were loaded before the resume was checked")

    monkeypatch.setattr(data, "load_task_data", no_data)
    one_error_line(finetune(out, "--resume", "auto", "--seq-len", "64"), "--seq-len 32", "not 64")
    wrong_task = CliRunner().invoke(
        app,
        [
            "finetune",
            *RUN[2:],
            "--task",
            "qa",
            "--output-dir",
            str(out),
            "--resume",
            str(checkpoint),
        ],
    )
    one_error_line(wrong_task, "task 'classification'", "not 'qa'")
    assert sorted(p.name for p in out.iterdir()) == before


def test_the_lock_is_released_when_the_run_fails(tmp_path):
    out = tmp_path / "run"
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"text": "a"}\n')  # no label
    result = finetune(out, "--train-file", str(bad))
    assert result.exit_code == 2, result.output
    assert not out.exists()  # the lock made it, nothing else was written: removed with the lock
    assert finetune(out).exit_code == 0


def test_under_torchrun_every_rank_stops_when_the_output_dir_is_locked(tmp_path):
    out = tmp_path / "run"
    held = lock_module.lock_output_dir(out)
    try:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            "--nproc_per_node=2",
            "-m",
            "yoso_cli.main",
            "finetune",
            *RUN,
            "--device",
            "cpu",
            "--output-dir",
            str(out),
        ]
        env = {**os.environ, "OMP_NUM_THREADS": "1"}
        done = subprocess.run(command, capture_output=True, text=True, timeout=300, env=env)
    finally:
        held.release()
    assert done.returncode != 0  # and no rank waits forever for rank 0
    assert f"is in use by another training run (pid {os.getpid()}" in done.stderr
    assert "rank 0 could not take --output-dir" in done.stderr
    assert done.stderr.count("error: ") >= 2  # one line from each rank (torchrun adds its own report)
