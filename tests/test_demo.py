"""`make demo`'s measuring and summary code (scripts/demo_summary.py) on tiny settings."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
spec = importlib.util.spec_from_file_location("demo_summary", ROOT / "scripts" / "demo_summary.py")
demo = importlib.util.module_from_spec(spec)
sys.modules["demo_summary"] = demo
spec.loader.exec_module(demo)

TINY_STEP = dict(
    size="tiny", seq_len=64, batch_size=2, vocab_size=100, num_hash=4, hash_code_len=6, steps=1, threads=1
)

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def baselines():
    """Timed steps of every attention on tiny settings, in process (the children run the same code)."""
    import resource

    rows = {}
    for name in ("softmax", "expectation", "sampled"):
        rows[name] = {**demo.time_steps(name, **TINY_STEP), "status": "ok"}
        rows[name]["peak_mib"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    return {"settings": TINY_STEP, "rows": rows}


def test_each_attention_times_a_training_step(baselines):
    for name, row in baselines["rows"].items():
        assert row["tokens_per_second"] > 0 and row["seconds_per_step"] > 0, name
        # real tokens only: the last row is padded by a quarter, as a document's last window is
        assert row["tokens_per_second"] == pytest.approx((2 * 64 - 16) / row["seconds_per_step"])
    assert baselines["rows"]["sampled"]["kernel"] in ("compiled", "pure-pytorch")


def test_baselines_run_in_a_child_that_reports_its_own_peak(tmp_path):
    out = tmp_path / "baselines.json"
    args = ["baselines", "--out", str(out), "--timeout", "300", "--attentions", "sampled", "--rounds", "1"]
    for key, value in TINY_STEP.items():
        args += [f"--{key.replace('_', '-')}", str(value)]
    assert demo.main(args) == 0
    data = json.loads(out.read_text())
    row = data["rows"]["sampled"]
    assert row["status"] == "ok" and row["tokens_per_second"] > 0
    assert 50 < row["peak_mib"] < 16_000, row  # a child's own resident set: torch's and more
    assert data["settings"]["seq_len"] == 64


def test_a_failing_child_is_reported_not_fatal():
    row = demo.run_child("softmax", {**TINY_STEP, "size": "no-such-size"}, timeout=120)
    assert row["tokens_per_second"] is None and row["peak_mib"] is None
    assert row["status"].startswith("failed") and "no-such-size" in row["status"]


def test_summary_has_the_documented_fields(baselines, tmp_path):
    result = tmp_path / "result.json"
    result.write_text(
        json.dumps({"steps": 7, "metrics": {"exact_match": 40.0, "f1": 45.0, "loss": 1.5}}) + "\n"
    )
    metrics = tmp_path / "metrics.jsonl"
    rows = [
        {"step": 5, "split": "train", "loss": 2.0, "tokens_per_second": 100.0},
        {"step": 7, "split": "train", "loss": 1.0, "tokens_per_second": 300.0},
        {"step": 7, "split": "validation", "loss": 1.5},
    ]
    metrics.write_text("".join(json.dumps(r) + "\n" for r in rows))
    base_file = tmp_path / "baselines.json"
    base_file.write_text(json.dumps(baselines))
    out = tmp_path / "out" / "summary.json"
    code = demo.main(
        ["summary", "--result", str(result), "--metrics", str(metrics), "--baselines", str(base_file),
         "--seq-len", "64", "--hash-code-len", "6", "--num-hash", "4", "--out", str(out),
         "--extra", json.dumps({"seconds": 12.5})]
    )  # fmt: skip
    assert code == 0
    data = json.loads(out.read_text())
    for key in ("attention", "seq_len", "hash_code_len", "num_hash", "metrics", "steps", "tokens_per_second"):
        assert key in data, key
    assert (data["attention"], data["seq_len"], data["hash_code_len"], data["num_hash"]) == (
        "sampled",
        64,
        6,
        4,
    )
    assert data["metrics"]["exact_match"] == 40.0 and data["steps"] == 7
    assert data["tokens_per_second"] == 300.0  # the first (warm-up) window is left out
    for name in ("softmax", "expectation"):
        assert set(data[name]) >= {"tokens_per_second", "peak_mib"}
        assert data[name]["tokens_per_second"] == baselines["rows"][name]["tokens_per_second"]
        ratio = (
            baselines["rows"]["sampled"]["tokens_per_second"] / baselines["rows"][name]["tokens_per_second"]
        )
        assert data[name]["sampled_speedup"] == pytest.approx(ratio, abs=0.01)
    assert data["sampled"]["kernel"] == baselines["rows"]["sampled"]["kernel"]
    assert data["seconds"] == 12.5
    assert not list(out.parent.glob(".*tmp*"))  # written atomically: no temporary file left


def test_out_of_memory_baselines_become_null():
    rows = {
        "sampled": {"tokens_per_second": 1000.0, "peak_mib": 500.0, "status": "ok"},
        "softmax": {"tokens_per_second": None, "peak_mib": None, "status": "out of memory"},
        "expectation": {"tokens_per_second": 250.0, "peak_mib": 2000.0, "status": "ok"},
    }
    data = demo.summary(result={"steps": 1, "metrics": {}}, attention="sampled", seq_len=4096,
                        hash_code_len=12, num_hash=32, baselines=rows)  # fmt: skip
    assert data["softmax"]["tokens_per_second"] is None and data["softmax"]["peak_mib"] is None
    assert data["softmax"]["status"] == "out of memory" and "sampled_speedup" not in data["softmax"]
    assert data["expectation"]["sampled_speedup"] == 4.0
    assert data["expectation"]["sampled_memory_ratio"] == 0.25
    json.dumps(data)  # JSON-ready
