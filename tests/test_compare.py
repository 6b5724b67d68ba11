"""scripts/compare.py: learning curves, seeds' means and ranges, chance, per-task data sets, the plot."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _compare():
    spec = importlib.util.spec_from_file_location("compare", ROOT / "scripts" / "compare.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


compare = _compare()


def test_curve_pairs_each_evaluation_with_the_training_time_before_it(tmp_path):
    rows = [
        {"step": 5, "split": "train", "loss": 2.0, "train_seconds": 1.5},
        {"step": 5, "split": "validation", "token_accuracy": 0.25},
        {"step": 10, "split": "train", "loss": 1.0, "train_seconds": 3.0},
        {"step": 10, "split": "validation", "token_accuracy": 0.5, "f1": 0.0},
    ]
    path = tmp_path / "metrics.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    assert compare.curve(path, "token_accuracy") == [
        {"step": 5, "train_seconds": 1.5, "token_accuracy": 0.25},
        {"step": 10, "train_seconds": 3.0, "token_accuracy": 0.5},
    ]


def _row(variant, seed, accuracy, tokens):
    return {
        "variant": variant,
        "attention": variant,
        "seed": seed,
        "status": "ok",
        "hash_code_len": None,
        "num_hash": None,
        "metrics": {"token_accuracy": accuracy, "f1": 0.0, "loss": 1.0},
        "tokens_per_second": tokens,
        "peak_mib": 100.0,
        "wall_s": 10.0,
        "curve": [],
    }


def test_seeds_are_averaged_with_their_range_in_the_table():
    rows = [_row("softmax", s, a, t) for s, a, t in ((0, 0.9, 100.0), (1, 0.8, 300.0), (2, 1.0, 200.0))]
    (row,) = compare.aggregate(rows, "token-classification")
    assert row["metrics"]["token_accuracy"] == pytest.approx(0.9)
    assert row["spread"]["token_accuracy"] == (0.8, 1.0)
    assert row["tokens_per_second"] == pytest.approx(200.0) and row["seeds"] == [0, 1, 2]
    table = compare.markdown([row], "token-classification", 512)
    assert "| 90.0 (80.0-100.0) |" in table


def test_a_failed_seed_makes_its_variant_a_failed_row():
    failed = dict(_row("sampled", 1, 0.0, 1.0), status="failed", error="boom")
    rows = compare.aggregate([_row("sampled", 0, 0.5, 1.0), failed], "token-classification")
    assert rows == [failed]


def test_each_task_is_compared_on_a_set_it_has(monkeypatch):
    seen = []

    def fake_run(name, attention, fields, base, task, threads, work):
        seen.append((task, base.get("dataset"), base["seed"]))
        return _row(name, base["seed"], 0.5, 1.0)

    monkeypatch.setattr(compare, "run_variant", fake_run)
    assert compare.main(["--task", "classification", "--variants", "softmax"]) == 0
    assert compare.main(["--task", "qa", "--variants", "softmax", "--seeds", "0", "3"]) == 0
    assert compare.main(["--task", "token-classification", "--variants", "softmax"]) == 0
    assert seen == [
        ("classification", None, 0),
        ("qa", "builtin:facts", 0),
        ("qa", "builtin:facts", 3),
        ("token-classification", "builtin:recall", 0),
    ]


def test_chance_of_the_recall_set_is_one_over_its_values():
    assert compare.chance_level("token-classification", "builtin:recall", 512) == pytest.approx(1 / 64)
    assert compare.chance_level("token-classification", "builtin:recall:values=8", 512) == 0.125
    assert compare.chance_level("qa", "builtin:facts", 512) is None


@pytest.mark.integration
def test_a_small_recall_study_writes_curves_a_plot_and_json(tmp_path, capsys):
    out = tmp_path / "study.json"
    plot = tmp_path / "curves.png"
    code = compare.main(
        [
            "--task", "token-classification", "--seq-len", "64", "--steps", "4", "--batch-size", "2",
            "--num-train", "16", "--num-validation", "4", "--eval-every", "2", "--threads", "1",
            "--variants", "softmax", "sampled:num_hash=4", "--json", str(out), "--plot", str(plot),
        ]
    )  # fmt: skip
    assert code == 0, capsys.readouterr().err
    data = json.loads(out.read_text())
    assert data["settings"]["chance"] == pytest.approx(1 / 64)
    for row in data["rows"]:
        assert row["status"] == "ok", row
        assert [p["step"] for p in row["curve"]] == [2, 4]
        assert 0 < row["curve"][0]["train_seconds"] <= row["curve"][1]["train_seconds"]
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert "chance 1.6%" in capsys.readouterr().out
