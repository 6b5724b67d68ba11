"""torchrun with 2 CPU processes (gloo): ranks agree and equal a 1-process run of the same global batch."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap

import pytest
import torch
from safetensors.torch import load_file

pytestmark = pytest.mark.integration

# Dropout off and YOSO-E, so the only difference between the runs is how the batch is split.
OPTIONS = {
    "task": "classification",
    "model": "tiny",
    "seq_len": 32,
    "num_train": 32,
    "num_validation": 8,
    "max_steps": 6,
    "eval_every": 3,
    "save_every": 3,
    "learning_rate": 1e-3,
    "seed": 11,
    "dropout": 0.0,
    "attention": "expectation",
    "device": "cpu",
}
DRIVER = textwrap.dedent("""
    import json, os, sys
    from safetensors.torch import save_model
    from yoso_core.training import merge_config, train

    options, out = json.loads(sys.argv[1]), sys.argv[2]
    result = train(merge_config(None, options))
    save_model(result.model, os.path.join(out, f"rank{os.environ.get('RANK', '0')}.safetensors"))
    if result.is_main:
        print(json.dumps(result.to_dict()))
""")


def launch(tmp_path, name: str, processes: int, batch_size: int) -> dict:
    out = tmp_path / name
    out.mkdir()
    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    options = json.dumps({**OPTIONS, "batch_size": batch_size, "output_dir": str(out / "run")})
    if processes == 1:
        command = [sys.executable, str(driver), options, str(out)]
    else:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={processes}",
            str(driver),
            options,
            str(out),
        ]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    done = subprocess.run(command, capture_output=True, text=True, timeout=600, env=env)
    assert done.returncode == 0, done.stderr[-3000:]
    summaries = [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(summaries) == 1  # only rank 0 reports
    return summaries[0]


def test_two_processes_match_one_process_with_the_same_global_batch(tmp_path):
    single = launch(tmp_path, "single", 1, batch_size=4)
    double = launch(tmp_path, "double", 2, batch_size=2)
    assert single["steps"] == double["steps"] == 6
    rank0 = load_file(tmp_path / "double" / "rank0.safetensors")
    rank1 = load_file(tmp_path / "double" / "rank1.safetensors")
    reference = load_file(tmp_path / "single" / "rank0.safetensors")
    for name, value in rank0.items():
        assert torch.equal(value, rank1[name]), f"ranks disagree on {name}"
        assert torch.allclose(value, reference[name], atol=1e-4, rtol=0), (
            f"{name} differs from the 1-process run"
        )
    changed = max(
        (
            rank0[n]
            - load_file(tmp_path / "double" / "run" / "checkpoints" / "step-3" / "model.safetensors")[n]
        )
        .abs()
        .max()
        .item()
        for n in rank0
    )
    assert changed > 1e-4  # the weights really moved between step 3 and step 6
    # rank 0 alone wrote the files: one metrics file, checkpoints, the final model
    run = tmp_path / "double" / "run"
    lines = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
    assert [line["step"] for line in lines if line["split"] == "validation"] == [3, 6]
    state = json.loads((run / "checkpoints" / "step-6" / "trainer_state.json").read_text())
    assert state["world_size"] == 2 and state["micro_batches"] == 6
    assert (run / "final" / "model.safetensors").is_file()
    assert double["metrics"]["accuracy"] == single["metrics"]["accuracy"]
    assert abs(double["metrics"]["loss"] - single["metrics"]["loss"]) < 1e-4
