"""A run killed with SIGKILL and resumed with --resume auto ends exactly like an uninterrupted run."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time

import pytest
import torch
from safetensors.torch import load_file

from yoso_core.training import checkpoint as ckpt

pytestmark = pytest.mark.integration

# Sampled YOSO with dropout: data order, dropout masks and hash functions must all survive the kill.
RUN = [
    sys.executable,
    "-m",
    "yoso_cli.main",
    "finetune",
    "--task",
    "classification",
    "--model",
    "tiny",
    "--seq-len",
    "48",
    "--num-train",
    "48",
    "--num-validation",
    "8",
    "--max-steps",
    "40",
    "--batch-size",
    "4",
    "--gradient-accumulation-steps",
    "2",
    "--save-every",
    "4",
    "--eval-every",
    "8",
    "--dropout",
    "0.1",
    "--attention",
    "sampled",
    "--num-hash",
    "4",
    "--hash-code-len",
    "4",
    "--learning-rate",
    "1e-3",
    "--seed",
    "7",
    "--device",
    "cpu",
]
# One thread: tiny models run fastest so, and the test suite shares the machine's cores.
ENV = {**os.environ, "OMP_NUM_THREADS": "1"}


def run(*extra: str) -> dict:
    done = subprocess.run([*RUN, *extra], capture_output=True, text=True, timeout=300, env=ENV)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def logged(path) -> list[dict]:
    """metrics.jsonl without the timing fields."""
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    timing = ("tokens_per_second", "train_seconds")
    return [{k: v for k, v in line.items() if k not in timing} for line in lines]


def test_sigkill_then_resume_auto_matches_an_uninterrupted_run(tmp_path):
    straight, killed = tmp_path / "straight", tmp_path / "killed"
    assert run("--output-dir", str(straight))["steps"] == 40

    process = subprocess.Popen(
        [*RUN, "--output-dir", str(killed)], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    deadline = time.monotonic() + 240
    while not ckpt.list_checkpoints(killed) and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    process.kill()  # SIGKILL: no cleanup, no final save
    process.wait()
    assert process.returncode == -9
    assert not (killed / "final").exists(), "the run ended before it could be killed"
    reached = ckpt.latest_checkpoint(killed)
    assert reached is not None and reached.name != "step-40"
    (killed / "checkpoints" / ".tmp-step-999-1").mkdir()  # a half-written checkpoint is ignored

    summary = run("--output-dir", str(killed), "--resume", "auto")
    assert summary["resumed_from"] == str(reached)
    assert summary["steps"] == 40
    a = load_file(straight / "final" / "model.safetensors")
    b = load_file(killed / "final" / "model.safetensors")
    assert a.keys() == b.keys()
    # Equal up to BLAS rounding (which can follow memory alignment); a resume that got the data
    # order, dropout or hashes wrong differs by ~1e-3 here.
    for name in a:
        assert torch.allclose(a[name], b[name], rtol=0, atol=1e-6), name
    # the metrics file holds each step once, with the same losses and evaluations
    straight_log, killed_log = logged(straight / "metrics.jsonl"), logged(killed / "metrics.jsonl")
    assert [(r["step"], r["split"]) for r in killed_log] == [(r["step"], r["split"]) for r in straight_log]
    for x, y in zip(straight_log, killed_log):
        assert x == pytest.approx(y, abs=1e-6)
    again = run("--output-dir", str(straight), "--resume", "auto")
    assert again["steps"] == 40 and again["metrics"] == pytest.approx(summary["metrics"], abs=1e-6)


def test_training_time_carries_on_across_a_resume(tmp_path):
    from yoso_core.training import merge_config, train

    options = dict(
        model="tiny", seq_len=32, num_train=16, num_validation=4, batch_size=4, log_every=2,
        save_every=4, eval_every=0, output_dir=str(tmp_path / "run"),
    )  # fmt: skip
    train(merge_config(None, {**options, "max_steps": 4}, task="classification"))
    train(merge_config(None, {**options, "max_steps": 8, "resume": "auto"}, task="classification"))
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").read_text().splitlines()]
    steps = [r["step"] for r in rows if r["split"] == "train"]
    seconds = [r["train_seconds"] for r in rows if r["split"] == "train"]
    assert steps == [2, 4, 6, 8]
    assert seconds[1] < seconds[2] < seconds[3], seconds  # not back to zero after step 4
