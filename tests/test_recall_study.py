"""scripts/recall_probe.py and scripts/recall_study.py: the variants' command lines, the softmax
baseline with YOSO-C's convolution, and a real two-variant study of a few steps."""

from __future__ import annotations

import argparse
import importlib.util
import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def _script(name: str):
    sys.path.insert(0, str(ROOT / "scripts"))
    spec = importlib.util.spec_from_file_location(name, ROOT / "scripts" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


study = _script("recall_study")
probe = _script("recall_probe")


def test_a_variant_names_its_attention_and_typed_fields():
    assert study.parse_variant("sampled:num_hash=16,lsh_backward=false") == (
        "sampled",
        {"num_hash": 16, "lsh_backward": False},
    )
    with pytest.raises(SystemExit, match="must be one of"):
        study.parse_variant("linear")
    with pytest.raises(SystemExit, match="field=value"):
        study.parse_variant("sampled:num_hash")


def test_probe_argv_spells_booleans_and_leaves_out_defaults():
    argv = study.probe_argv(
        "sampled", {"seq_len": 64, "pairs": None, "conv_window": 0, "lsh_backward": False, "num_hash": 8}
    )
    assert argv[2:] == ["--attention", "sampled", "--seq-len", "64", "--no-lsh-backward", "--num-hash", "8"]
    assert "--pairs" not in argv and "--conv-window" not in argv
    assert "--conv-window" in study.probe_argv("expectation", {"conv_window": 3})


def test_softmax_conv_is_the_yoso_c_layer_with_exact_softmax():
    """Same projections and convolution as the YOSO model; the attention is softmax over unmasked keys."""
    args = argparse.Namespace(
        attention="softmax-conv", model="tiny", seq_len=16, hidden_size=None, layers=None,
        num_hash=32, hash_code_len=None, conv_window=3, lsh_backward=True,
    )  # fmt: skip
    shape = probe.recall.recall_shape(16)
    torch.manual_seed(0)
    model = probe.build(args, shape).eval()
    layer = model.yoso.encoder.layer[0].attention.self
    assert isinstance(layer, probe.SoftmaxConvAttention) and layer.use_conv
    hidden = torch.randn(2, 6, model.config.hidden_size)
    mask = torch.tensor([[1, 1, 1, 1, 1, 1], [1, 1, 1, 1, 0, 0]])
    (out,) = layer(hidden, mask)
    heads = layer._heads
    q, k, v = heads(layer.query(hidden)), heads(layer.key(hidden)), heads(layer.value(hidden))
    scores = q @ k.transpose(-1, -2) / q.shape[-1] ** 0.5
    scores = scores.masked_fill(mask[:, None, None, :] == 0, float("-inf"))
    expected = scores.softmax(-1) @ v + layer.conv(v * mask[:, None, :, None])
    b, h, n, d = expected.shape
    torch.testing.assert_close(out, expected.permute(0, 2, 1, 3).reshape(b, n, h * d), rtol=1e-5, atol=1e-6)
    # a masked key changes nothing it is not allowed to reach
    changed = hidden.clone()
    changed[1, 4:] += 5.0
    (again,) = layer(changed, mask)
    conv_reach = 3 // 2
    torch.testing.assert_close(again[1, : 4 - conv_reach], out[1, : 4 - conv_reach])


def test_a_study_of_two_variants_writes_curves_table_and_json(tmp_path):
    out = tmp_path / "study.json"
    proc = subprocess.run(
        [
            sys.executable, str(ROOT / "scripts" / "recall_study.py"), "--seq-len", "32", "--steps", "4",
            "--eval-every", "2", "--batch-size", "4", "--variants", "softmax-conv", "sampled:num_hash=4",
            "--json", str(out), "--work-dir", str(tmp_path / "runs"),
        ],
        capture_output=True, text=True, timeout=600, cwd=ROOT,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "| softmax-conv |" in proc.stdout and "| sampled:num_hash=4 | 8 | 4 |" in proc.stdout
    saved = json.loads(out.read_text())
    assert saved["chance"] == pytest.approx(1 / 64)
    for row in saved["rows"]:
        assert row["status"] == "ok" and row["steps"] == 4
        assert [p["step"] for p in row["curve"]] == [2, 4]
        assert row["tokens_per_second"] > 0 and row["peak_mib"] > 0
        assert 0.0 <= row["metrics"]["token_accuracy"] <= 1.0


def test_from_runs_tables_and_plots_saved_outputs_without_training(tmp_path, capsys):
    header = {"settings": {"seed": 3}, "chance": 1 / 64, "pairs": 4, "hash_code_len": 8, "num_hash": None}
    evals = [
        {"step": 10, "loss": 2.0, "accuracy": 0.25, "train_seconds": 1.0, "train_tokens": 640},
        {"step": 20, "loss": 0.5, "accuracy": 0.75, "train_seconds": 2.0, "train_tokens": 1280},
    ]
    saved = tmp_path / "run.jsonl"
    saved.write_text("".join(json.dumps(r) + "\n" for r in (header, *evals)))
    empty = tmp_path / "empty.jsonl"
    empty.write_text(json.dumps(header) + "\n")
    code = study.main(["--from-runs", f"mine={saved}", f"broken={empty}"])
    table = capsys.readouterr().out
    assert code == 1  # the run without evaluations is reported, not dropped
    assert "| mine | 8 | - | 75.0 | 0.500 | 640 |" in table
    assert "| broken | failed:" in table
    with pytest.raises(SystemExit, match="NAME=FILE"):
        study.main(["--from-runs", str(saved)])
