"""Prediction does not depend on training: answering lines imports nothing from yoso_core.training."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest

from yoso_core.data import load_task_data
from yoso_core.training import merge_config, train

pytestmark = pytest.mark.usefixtures("one_thread")

SCRIPT = """
import json, sys
from yoso_core.predict import predict
answers = list(predict(sys.argv[1], [sys.argv[2]], device="cpu", on_metrics=lambda m: None))
print(json.dumps({
    "answers": answers,
    "training": sorted(m for m in sys.modules if m.startswith("yoso_core.training")),
}))
"""


def test_predict_imports_no_training_module(tmp_path):
    config = merge_config(
        None,
        {
            "model": "tiny",
            "seq_len": 64,
            "num_train": 8,
            "num_validation": 2,
            "max_steps": 1,
            "batch_size": 4,
            "eval_every": 0,
            "save_every": 0,
            "output_dir": str(tmp_path / "run"),
        },
        task="classification",
    )
    final = train(config).final_dir
    record = load_task_data("classification", seed=3, seq_len=64, num_train=1, num_validation=1)[
        "validation"
    ][0]
    line = json.dumps({"id": "x", **record})  # labelled: the scoring path runs too
    out = subprocess.run(
        [sys.executable, "-c", SCRIPT, final, line],
        capture_output=True,
        text=True,
        timeout=300,
        env={**os.environ, "OMP_NUM_THREADS": "1"},
    )
    assert out.returncode == 0, out.stderr
    result = json.loads(out.stdout.strip().splitlines()[-1])
    assert [a["id"] for a in result["answers"]] == ["x"]
    assert result["training"] == []
