"""Prediction does not depend on training: answering lines imports nothing from yoso_core.training."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from helpers import train_tiny_classifier

from yoso_core.data import load_task_data

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
    final = train_tiny_classifier(tmp_path / "run", max_steps=1).final_dir
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
