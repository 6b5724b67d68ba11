"""`yoso bench --model-level`: a training step with AdamW, gradient checkpointing, code lengths per
length, and model directories it cannot build refused."""

from __future__ import annotations

import json

import pytest
import torch
from helpers import invoke

from yoso_core import bench
from yoso_core.bench import BenchConfig
from yoso_core.modeling import is_gradient_checkpointing

pytestmark = pytest.mark.usefixtures("one_thread")

TINY_MODEL = dict(
    model_level=True, model="tiny", repeats=1, warmup=0, memory="none", num_hash=4, hash_code_len=4
)


def _config(**fields) -> BenchConfig:
    return BenchConfig(**{**TINY_MODEL, "model_overrides": dict(vocab_size=99), **fields})


@pytest.mark.parametrize("impl", ["yoso", "softmax", "transformers-yoso"])
def test_gradient_checkpointing_reaches_every_model(impl):
    on = bench.build_model(_config(seq_len=[16], backward=True, gradient_checkpointing=True), impl, 16)
    off = bench.build_model(_config(seq_len=[16], backward=True), impl, 16)
    assert is_gradient_checkpointing(on) and not is_gradient_checkpointing(off)


def test_a_training_step_takes_an_optimiser_step():
    """--backward at the model level is forward, backward and AdamW: the weights move."""
    cfg = _config(seq_len=[16], backward=True, gradient_checkpointing=True)
    model = bench.build_model(cfg, "yoso", 16)
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    bench.model_call(cfg, model, 16)()
    moved = [n for n, p in model.named_parameters() if not torch.equal(p, before[n])]
    assert "encoder.layer.0.attention.self.query.weight" in moved


def test_checkpointed_rows_say_so_and_recompute_every_layer(monkeypatch):
    """A checkpointed row's training step runs the layers' parts again in the backward (the
    recomputation), an unchecked one's once, for every model; the note says which it was."""
    from transformers.modeling_layers import GradientCheckpointingLayer

    from yoso_core.bench import cases

    calls: dict[tuple[str, bool], int] = {}  # (impl, checkpointed) -> layer forwards
    real = cases.build_model

    def counted(cfg, impl, max_len):
        model = real(cfg, impl, max_len)
        key = (impl, cfg.gradient_checkpointing)
        calls[key] = 0
        layers = [m for m in model.modules() if isinstance(m, GradientCheckpointingLayer)]
        assert layers, impl
        for layer in layers:  # the layer's own hooks stay outside the checkpoint: its parts' run inside
            for part in layer.children():
                part.register_forward_hook(lambda *args, key=key: calls.__setitem__(key, calls[key] + 1))
        return model

    monkeypatch.setattr(cases, "build_model", counted)
    impls = ["softmax", "yoso", "transformers-yoso"]
    for checkpointed in (False, True):
        rows = bench.run_bench(_config(seq_len=[16], backward=True, gradient_checkpointing=checkpointed))
        assert [r.impl for r in rows] == impls
        for r in rows:
            assert r.status == "ok", r.note
            said = "a training step: forward, backward, AdamW, with gradient checkpointing" in r.note
            assert said == checkpointed, r.note
    for impl in impls:
        # recomputed in the backward (torch's early stop may spare a last part that nothing needs)
        assert calls[(impl, True)] > calls[(impl, False)] > 0, (impl, calls)


def test_model_level_auto_code_length_is_log2_n_per_length():
    rows = bench.run_bench(_config(seq_len=[256, 1024], hash_code_len="auto", impls=["softmax", "yoso"]))
    assert [(r.impl, r.seq_len, r.hash_code_len, r.status) for r in rows] == [
        ("softmax", 256, None, "ok"),
        ("yoso", 256, 8, "ok"),
        ("softmax", 1024, None, "ok"),
        ("yoso", 1024, 10, "ok"),
    ]
    # the models themselves get log2 n, not only the rows' labels
    cfg = _config(seq_len=[256, 1024], hash_code_len="auto")
    for n, tau in ((256, 8), (1024, 10)):
        assert bench.build_model(cfg, "yoso", n).config.hash_code_len == tau
        assert bench.build_model(cfg, "transformers-yoso", n).config.hash_code_len == tau
    assert all(r.speedup_vs_softmax is not None for r in rows)


def test_the_child_reports_the_whole_process_peak():
    """A model row measured in a child names the whole process's peak, what must fit in memory."""
    rows = bench.run_bench(_config(seq_len=[32], memory="process", impls=["yoso"], backward=True))
    (row,) = rows
    assert row.status == "ok", row.note
    whole = float(row.note.split("whole process peak ")[1].split(" MiB")[0].replace(",", ""))
    assert whole > row.peak_mem_mib and whole > 100  # torch itself takes more than 100 MiB


def _one_error_line(result, *parts: str) -> None:
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    for part in parts:
        assert part in lines[0]


def test_a_directory_of_another_architecture_is_refused(tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "gpt2", "n_embd": 768, "n_layer": 12}))
    result = invoke("bench", "--model-level", "--model", str(tmp_path), "--seq-len", "64")
    _one_error_line(result, f"--model {tmp_path}", "'gpt2'", "'yoso' or 'roberta'")
    (tmp_path / "config.json").write_text("[1, 2]")
    _one_error_line(invoke("bench", "--model-level", "--model", str(tmp_path)), "names no model_type")


@pytest.mark.parametrize(
    "args",
    [
        ["--gradient-checkpointing"],
        ["--model-level", "--model", "tiny", "--gradient-checkpointing"],
    ],
    ids=["attention-level", "forward-only"],
)
def test_gradient_checkpointing_needs_a_model_level_training_step(args):
    _one_error_line(invoke("bench", *args), "--gradient-checkpointing", "--model-level --backward")


@pytest.mark.integration
def test_cli_model_level_checkpointed_step_with_auto_code_length():
    result = invoke(
        "bench",
        "--model-level",
        "--model",
        "tiny",
        "--seq-len",
        "64",
        "--backward",
        "--gradient-checkpointing",
        "--hash-code-len",
        "auto",
        "--dtype",
        "bfloat16",
        "--impl",
        "yoso",
        "--memory",
        "none",
        "--repeats",
        "1",
        "--json",
    )
    assert result.exit_code == 0, result.stderr
    (row,) = [json.loads(line) for line in result.stdout.splitlines()]
    assert (row["status"], row["hash_code_len"], row["dtype"]) == ("ok", 8, "bfloat16")
    assert "gradient checkpointing" in row["note"] and "gradient checkpointing" in result.stderr
