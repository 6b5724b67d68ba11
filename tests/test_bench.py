"""`yoso bench`: rows, ratios, budgets and outputs on tiny sizes; never wall-clock thresholds."""

from __future__ import annotations

import csv
import io
import json
import sys
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from yoso_cli.main import app
from yoso_core import bench
from yoso_core.bench import BenchConfig, BenchRow, add_ratios, check_targets, time_interleaved

TINY_ATTENTION = dict(
    seq_len=[16, 32], heads=2, head_dim=8, num_hash=4, hash_code_len=4, repeats=2, memory="none"
)


class FakeClock:
    """A clock that moves only when a fake call says how long it took."""

    def __init__(self):
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def _fake_calls(clock: FakeClock, durations: dict[str, float], log: list[str]):
    def make(name):
        def call():
            log.append(name)
            clock.now += durations[name]

        return call

    return {name: make(name) for name in durations}


def test_time_interleaved_alternates_and_summarises():
    clock, log = FakeClock(), []
    calls = _fake_calls(clock, {"a": 0.5, "b": 2.0}, log)
    result = time_interleaved(calls, warmup=1, repeats=3, budget_s=100, clock=clock)
    assert log == ["a", "b", "a", "b", "a", "b", "a", "b"]  # warm-ups, then rounds of one call each
    assert result["a"].seconds == [0.5, 0.5, 0.5] and result["b"].seconds == [2.0, 2.0, 2.0]
    assert result["a"].status == result["b"].status == "ok"


def test_time_interleaved_budget_and_failures():
    clock, log = FakeClock(), []
    calls = _fake_calls(clock, {"fast": 1.0, "slow": 4.0, "huge": 20.0}, log)

    def oom():
        raise RuntimeError("DefaultCPUAllocator: can't allocate memory: you tried to allocate 1 TB")

    def broken():
        raise ValueError("bad shape")

    calls["oom"], calls["broken"] = oom, broken
    result = time_interleaved(calls, warmup=1, repeats=5, budget_s=10, clock=clock)
    assert result["fast"].seconds == [1.0] * 5 and result["fast"].note == ""
    # slow: 4 s warm-up + 4 s + 4 s passes 10 s after the second repeat
    assert result["slow"].status == "ok" and result["slow"].seconds == [4.0, 4.0]
    assert "stopped after 2 of 5 repeats" in result["slow"].note
    assert result["huge"].status == "timeout" and result["huge"].seconds == []
    assert result["oom"].status == "oom" and "can't allocate" in result["oom"].note
    assert result["broken"].status == "error" and result["broken"].note == "ValueError: bad shape"


def test_add_ratios_arithmetic():
    rows = [
        BenchRow("attention", "sdpa", 64, "forward", median_ms=12.0, peak_mem_mib=40.0),
        BenchRow("attention", "yoso-reference", 64, "forward", median_ms=3.0, peak_mem_mib=10.0),
        BenchRow("attention", "yoso-e", 64, "forward", median_ms=48.0, peak_mem_mib=None),
        BenchRow("attention", "yoso-cpu", 64, "forward", status="skipped"),
        BenchRow("attention", "yoso-reference", 128, "forward", median_ms=5.0),  # no softmax at 128
    ]
    add_ratios(rows)
    assert rows[0].speedup_vs_softmax == 1.0 and rows[0].memory_vs_softmax == 1.0
    assert rows[1].speedup_vs_softmax == 4.0 and rows[1].memory_vs_softmax == 0.25
    assert rows[2].speedup_vs_softmax == 0.25 and rows[2].memory_vs_softmax is None
    assert rows[3].speedup_vs_softmax is None and rows[4].speedup_vs_softmax is None


def test_attention_rows_on_tiny_sizes():
    cfg = BenchConfig(**TINY_ATTENTION)
    rows = bench.run_bench(cfg)
    assert [(r.seq_len, r.impl) for r in rows] == [
        (n, impl) for n in (16, 32) for impl in ("sdpa", "yoso-e", "yoso-reference", "yoso-cpu")
    ]
    by = {(r.seq_len, r.impl): r for r in rows}
    for n in (16, 32):
        base = by[(n, "sdpa")]
        for impl in ("sdpa", "yoso-e", "yoso-reference"):
            r = by[(n, impl)]
            assert r.status == "ok", r.note
            assert r.repeats == 2 and r.min_ms <= r.median_ms <= r.max_ms
            assert r.speedup_vs_softmax == pytest.approx(base.median_ms / r.median_ms)
            assert (r.batch, r.heads, r.head_dim, r.mode, r.device) == (1, 2, 8, "forward", "cpu")
            assert r.peak_mem_mib is None and r.memory_method is None
        assert by[(n, "yoso-reference")].num_hash == 4 and by[(n, "yoso-e")].num_hash is None
        compiled = by[
            (n, "yoso-cpu")
        ]  # the compiled kernel runs where it is built, else says how to build it
        assert compiled.status in ("ok", "skipped")
        if compiled.status == "skipped":
            assert "build-kernels" in compiled.note and compiled.median_ms is None
        else:
            assert compiled.repeats == 2
            assert compiled.speedup_vs_softmax == pytest.approx(base.median_ms / compiled.median_ms)


def test_backward_mode_and_impl_filter():
    cfg = BenchConfig(
        **{**TINY_ATTENTION, "seq_len": [16], "repeats": 1}, backward=True, impls=["sdpa", "yoso-reference"]
    )
    rows = bench.run_bench(cfg)
    assert [r.impl for r in rows] == ["sdpa", "yoso-reference"]
    assert all(r.status == "ok" and r.mode == "forward+backward" for r in rows)


def test_timeouts_skip_longer_lengths():
    cfg = BenchConfig(**{**TINY_ATTENTION, "impls": ["sdpa"]}, time_budget=1e-9)
    rows = bench.run_bench(cfg)
    assert [r.status for r in rows] == ["timeout", "timeout"]
    assert "time budget" in rows[0].note and rows[1].note == "skipped: timeout at seq 16"
    assert rows[1].median_ms is None


def test_peak_memory_in_child_process():
    cfg = BenchConfig(
        **{**TINY_ATTENTION, "seq_len": [64], "repeats": 1, "memory": "process"}, impls=["sdpa", "yoso-e"]
    )
    rows = bench.run_bench(cfg)
    for r in rows:
        assert r.status == "ok", r.note
        assert r.peak_mem_mib is not None and r.peak_mem_mib >= 0
        assert r.memory_method.startswith("child process")
    sdpa, yoso_e = rows
    if sdpa.peak_mem_mib > 0:
        assert yoso_e.memory_vs_softmax == pytest.approx(yoso_e.peak_mem_mib / sdpa.peak_mem_mib)


def test_measure_cpu_call_sees_an_allocation():
    # 96 MiB is above glibc's largest mmap threshold (32 MiB): fresh pages, which ones() touches.
    kept = []
    result = bench.measure_cpu_call(lambda: kept.append(torch.ones(96 * 2**20 // 4)))
    assert result["status"] == "ok" and result["method"] == bench.MEMORY_CHILD
    assert 90 <= result["peak_mib"] < 200


def test_model_level_rows():
    cfg = BenchConfig(
        seq_len=[16],
        model_level=True,
        model="tiny",
        repeats=1,
        memory="none",
        model_overrides=dict(vocab_size=99),
        num_hash=4,
        hash_code_len=4,
    )
    rows = bench.run_bench(cfg)
    assert [r.impl for r in rows] == ["softmax", "yoso", "transformers-yoso"]
    for r in rows:
        assert r.status == "ok", r.note
        assert (r.level, r.model, r.heads, r.head_dim) == ("model", "tiny", 2, 32)
    assert "expectation mode" in rows[2].note and "sampled" in rows[1].note
    assert rows[0].speedup_vs_softmax == 1.0


def test_cli_defaults_are_bench_config_defaults():
    """Every `yoso bench` option that names a BenchConfig field defaults to that field's default."""
    import dataclasses
    import inspect

    from yoso_cli.commands.bench import command

    params = inspect.signature(command).parameters
    default = BenchConfig()
    shared = [f.name for f in dataclasses.fields(BenchConfig) if f.name in params and f.name != "seq_len"]
    assert len(shared) == 15
    for name in shared:
        expected = getattr(default, name)
        assert params[name].default.default == (str(expected) if name == "hash_code_len" else expected), name
    assert f"default {' '.join(map(str, default.seq_len))}." in params["seq_len"].default.help


def test_docs_list_every_target_with_its_requirement():
    """docs/bench.md's table of targets is the table of TARGETS: one line per record, same requirement."""
    doc = (Path(__file__).resolve().parents[1] / "docs" / "bench.md").read_text()
    lines = [
        line for line in doc.splitlines() if line.startswith("| sampled YOSO") or " model forward vs " in line
    ]
    assert len(lines) == len(bench.TARGETS)
    for target, line in zip(bench.TARGETS, lines, strict=True):
        assert line.startswith(f"| {target.what} | `{target.requirement}` |"), line


def test_check_targets():
    def row(impl, n, ms, mem=None, mode="forward", dtype="float32", tau=8):
        return BenchRow(
            "attention",
            impl,
            n,
            mode,
            median_ms=ms,
            peak_mem_mib=mem,
            dtype=dtype,
            hash_code_len=None if impl == "sdpa" else tau,
        )

    bwd = "forward+backward"
    rows = [
        row("sdpa", 4096, 100.0),
        row("yoso-reference", 4096, 20.0),
        row("yoso-cpu", 4096, 5.0),
        row("sdpa", 16384, 1000.0),
        row("yoso-cpu", 16384, 30.0, mem=50.0),
        row("yoso-e", 16384, 900.0, 1000.0),
        row("sdpa", 4096, 50.0, dtype="bfloat16"),
        row("yoso-cpu", 4096, 4.0, dtype="bfloat16"),  # 12.5x bf16 SDPA, faster than fp32's 5 ms
        row("sdpa", 4096, 400.0, mode=bwd),
        row("yoso-cpu", 4096, 60.0, mode=bwd, tau=12),  # auto code length at 4096: 6.67x
    ]
    checks = {c.target: c for c in check_targets(rows)}
    fwd = checks["sampled YOSO forward vs SDPA at 4096, float32, tau 8"]
    assert (fwd.measured, fwd.status) == ("20.00x", "met")  # the fastest sampled backend counts
    assert checks["sampled YOSO forward vs SDPA at 16384, float32, tau 8"].status == "missed"  # 33.3x < 40x
    growth = checks["sampled YOSO forward time growth 4096 -> 16384, float32, tau 8"]
    assert (growth.measured, growth.status) == ("6.00x", "missed")
    assert checks["sampled YOSO forward peak memory vs YOSO-E at 16384"].status == "met"
    assert checks["sampled YOSO forward+backward vs SDPA at 4096, float32, tau 8"].status == "not measured"
    bf16 = checks["sampled YOSO forward vs SDPA at 4096, bfloat16, tau 8"]
    assert (bf16.measured, bf16.status) == ("12.50x", "met")  # against bf16 SDPA, not fp32's
    faster = checks["sampled YOSO forward bfloat16 vs float32 at 4096, tau 8"]
    assert (faster.measured, faster.status) == ("1.25x", "met")
    auto = checks["sampled YOSO forward+backward vs SDPA at 4096, float32, tau log2(n)=12"]
    assert (auto.measured, auto.status) == ("6.67x", "missed")
    assert checks["sampled YOSO forward+backward vs SDPA at 16384, float32, tau log2(n)=14"].status == (
        "not measured"
    )


def test_auto_code_length_and_several_dtypes_in_one_run(monkeypatch):
    """--hash-code-len auto times each length with round(log2 n); several dtypes give rows of each,
    with ratios taken against SDPA of the same dtype."""
    seen = []

    def fake_call(cfg, level, impl, seq_len, inputs=None):
        seen.append((impl, seq_len, cfg.dtype, cfg.hash_code_len))
        return lambda: sum(range(20000))

    monkeypatch.setattr(bench.runner, "make_call", fake_call)
    cfg = bench.BenchConfig(
        seq_len=[256, 1024],
        heads=2,
        head_dim=8,
        num_hash=4,
        hash_code_len="auto",
        dtype="float32,bfloat16",
        repeats=1,
        memory="none",
        impls=["sdpa", "yoso-reference"],
    )
    rows = bench.run_bench(cfg)
    assert [(r.impl, r.seq_len, r.dtype, r.hash_code_len) for r in rows] == [
        ("sdpa", 256, "float32", None),
        ("yoso-reference", 256, "float32", 8),
        ("sdpa", 1024, "float32", None),
        ("yoso-reference", 1024, "float32", 10),
        ("sdpa", 256, "bfloat16", None),
        ("yoso-reference", 256, "bfloat16", 8),
        ("sdpa", 1024, "bfloat16", None),
        ("yoso-reference", 1024, "bfloat16", 10),
    ]
    assert ("yoso-reference", 1024, "bfloat16", 10) in seen
    assert all(r.speedup_vs_softmax is not None for r in rows)
    assert bench.auto_hash_code_len(4096) == 12 and bench.auto_hash_code_len(16384) == 14
    # the rule of a new model in `yoso pretrain`: never below 8, never above 16
    assert bench.auto_hash_code_len(128) == 8 and bench.auto_hash_code_len(1 << 20) == 16


def _rows():
    rows = [
        BenchRow("attention", "sdpa", 16, "forward", median_ms=2.0, min_ms=1.0, max_ms=3.0, repeats=3),
        BenchRow("attention", "yoso-cpu", 16, "forward", status="skipped", note='not built, "really"'),
    ]
    add_ratios(rows)
    return rows


def test_json_lines_and_csv(tmp_path):
    rows = _rows()
    parsed = [json.loads(line) for line in bench.json_lines(rows).splitlines()]
    assert [list(p) for p in parsed] == [list(bench.FIELDS)] * 2
    assert parsed[0]["median_ms"] == 2.0 and parsed[0]["speedup_vs_softmax"] == 1.0
    assert parsed[1]["median_ms"] is None and parsed[1]["note"] == 'not built, "really"'
    bench.write_csv(rows, tmp_path / "out" / "b.csv")
    table = list(csv.DictReader(io.StringIO((tmp_path / "out" / "b.csv").read_text())))
    assert [r["impl"] for r in table] == ["sdpa", "yoso-cpu"]
    assert table[0]["min_ms"] == "1.0" and table[1]["median_ms"] == "" and table[1]["status"] == "skipped"
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["b.csv"]  # no temporary left


def test_plot_file(tmp_path):
    pytest.importorskip("matplotlib")
    rows = [
        BenchRow("attention", impl, n, "forward", median_ms=n * k, peak_mem_mib=n * k / 10)
        for n in (16, 32, 64)
        for impl, k in (("sdpa", 1.0), ("yoso-reference", 0.5))
    ]
    bench.write_plot(rows, tmp_path / "bench.png")
    data = (tmp_path / "bench.png").read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_cli_bench_json_csv(tmp_path):
    result = CliRunner().invoke(
        app,
        [
            "bench",
            "--seq-len",
            "16",
            "24",
            "--seq-len",
            "32",
            "--heads",
            "2",
            "--head-dim",
            "8",
            "--num-hash",
            "4",
            "--repeats",
            "1",
            "--memory",
            "none",
            "--impl",
            "sdpa",
            "--impl",
            "yoso-e",
            "--json",
            "--csv",
            str(tmp_path / "b.csv"),
        ],
    )
    assert result.exit_code == 0, result.output
    rows = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert [(r["seq_len"], r["impl"]) for r in rows] == [
        (n, i) for n in (16, 24, 32) for i in ("sdpa", "yoso-e")
    ]
    assert all(r["status"] == "ok" for r in rows)
    assert "yoso bench, attention level" in result.stderr
    assert len(list(csv.DictReader(io.StringIO((tmp_path / "b.csv").read_text())))) == 6


@pytest.mark.parametrize(
    "args, message",
    [
        (["--seq-len", "abc"], "--seq-len takes whole numbers"),
        (["--seq-len", "0"], "--seq-len values must be positive"),
        (["--batch", "0"], "--batch must be a positive integer"),
        (["--hash-code-len", "17"], "--hash-code-len must be auto or an integer in [1, 16]"),
        (["--hash-code-len", "many"], "--hash-code-len must be auto or an integer in [1, 16]"),
        (["--dtype", "float32,float8"], "--dtype must be one of"),
        (["--dtype", "float8"], "--dtype must be one of"),
        (["--impl", "flash"], "--impl 'flash' is not one of the attention-level"),
        (["--model-level", "--model", "huge"], "--model must be one of tiny, small, base"),
        (["4096"], "lengths go after --seq-len"),
    ],
)
def test_cli_bad_input_exits_2(args, message):
    result = CliRunner().invoke(app, ["bench", *args])
    assert result.exit_code == 2
    assert result.stderr.strip().splitlines()[-1].startswith("error: ")
    assert message in result.stderr


def test_cli_cuda_without_gpu_exits_2():
    if torch.cuda.is_available():
        pytest.skip("a GPU is present")
    result = CliRunner().invoke(app, ["bench", "--device", "cuda"])
    assert result.exit_code == 2 and "--device cuda needs a CUDA GPU" in result.stderr


def test_a_model_that_cannot_be_built_fails_alone(monkeypatch):
    real = bench.build_model

    def build(cfg, impl, max_len):
        if impl == "transformers-yoso":
            raise ImportError("transformers YOSO is broken here")
        return real(cfg, impl, max_len)

    monkeypatch.setattr(bench.cases, "build_model", build)
    cfg = BenchConfig(
        seq_len=[16],
        model_level=True,
        model="tiny",
        repeats=1,
        memory="none",
        model_overrides=dict(vocab_size=99),
    )
    rows = {r.impl: r for r in bench.run_bench(cfg)}
    assert rows["softmax"].status == rows["yoso"].status == "ok"
    assert rows["transformers-yoso"].status == "error"
    assert "transformers YOSO is broken here" in rows["transformers-yoso"].note


def test_cli_plot_and_missing_matplotlib(tmp_path, monkeypatch):
    args = [
        "bench",
        "--seq-len",
        "16,32",
        "--heads",
        "2",
        "--head-dim",
        "8",
        "--num-hash",
        "4",
        "--repeats",
        "1",
        "--memory",
        "none",
        "--impl",
        "sdpa",
        "--impl",
        "yoso-reference",
        "--plot",
        str(tmp_path / "b.png"),
    ]
    try:
        import matplotlib  # noqa: F401

        have_matplotlib = True
    except ImportError:
        have_matplotlib = False
    if have_matplotlib:  # draw through the CLI; the missing case below runs either way
        result = CliRunner().invoke(app, args)
        assert result.exit_code == 0, result.output
        assert (tmp_path / "b.png").read_bytes()[:4] == b"\x89PNG"
    monkeypatch.setitem(sys.modules, "matplotlib", None)  # import matplotlib now raises ImportError
    result = CliRunner().invoke(app, [*args[:-1], str(tmp_path / "c.png")])
    assert result.exit_code == 2
    assert "pip install 'yoso[plot]'" in result.stderr and "yoso bench, attention level" not in result.stderr
    assert not (tmp_path / "c.png").exists()


def test_child_deaths_are_classified(monkeypatch):
    import subprocess

    cfg = BenchConfig(**{**TINY_ATTENTION, "memory": "process"})

    def killed(*args, **kwargs):
        return subprocess.CompletedProcess(args, -9, stdout="", stderr="")

    monkeypatch.setattr(bench.memory.subprocess, "run", killed)
    result = bench.child_measure(cfg, "attention", "yoso-e", 16)
    assert result["status"] == "oom" and "signal 9" in result["note"]

    def too_slow(*args, **kwargs):
        raise subprocess.TimeoutExpired(args, kwargs["timeout"])

    monkeypatch.setattr(bench.memory.subprocess, "run", too_slow)
    assert bench.child_measure(cfg, "attention", "yoso-e", 16)["status"] == "timeout"

    def crashed(*args, **kwargs):
        return subprocess.CompletedProcess(args, 1, stdout="", stderr="Traceback\nRuntimeError: boom\n")

    monkeypatch.setattr(bench.memory.subprocess, "run", crashed)
    result = bench.child_measure(cfg, "attention", "yoso-e", 16)
    assert result == {"status": "error", "note": "child process exited 1: RuntimeError: boom"}


def test_an_oom_row_skips_longer_lengths_and_the_rest_continue(monkeypatch):
    def fake_child(cfg, level, impl, seq_len):
        if impl == "yoso-e" and seq_len >= 32:
            return {"status": "oom", "note": "child process killed by signal 9"}
        return {"status": "ok", "peak_mib": float(seq_len), "seconds": 0.0, "method": bench.MEMORY_CHILD}

    monkeypatch.setattr(bench.runner, "child_measure", fake_child)
    cfg = BenchConfig(
        **{**TINY_ATTENTION, "seq_len": [16, 32, 64], "repeats": 1, "memory": "process"},
        impls=["sdpa", "yoso-e"],
    )
    rows = {(r.seq_len, r.impl): r for r in bench.run_bench(cfg)}
    assert rows[(16, "yoso-e")].status == "ok" and rows[(16, "yoso-e")].memory_vs_softmax == 1.0
    assert rows[(32, "yoso-e")].status == "oom" and rows[(32, "yoso-e")].median_ms is None
    assert (rows[(64, "yoso-e")].status, rows[(64, "yoso-e")].note) == ("oom", "skipped: oom at seq 32")
    assert all(rows[(n, "sdpa")].status == "ok" and rows[(n, "sdpa")].peak_mem_mib == n for n in (16, 32, 64))


def test_every_public_name_of_the_package_is_its_modules_object():
    """``yoso_core.bench`` lists each public name once: ``__all__`` and the lazy loader agree."""
    import importlib

    from yoso_core import bench as package

    assert len(package.__all__) == len(set(package.__all__)) == sum(map(len, package._PUBLIC.values()))
    for module, names in package._PUBLIC.items():
        loaded = importlib.import_module(f"yoso_core.bench.{module}")
        for name in names:
            assert name in package.__all__
            assert getattr(package, name) is getattr(loaded, name), f"{name} from {module}"
    with pytest.raises(AttributeError, match="has no attribute 'nothing'"):
        package.nothing  # noqa: B018
