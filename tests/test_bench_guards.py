"""`yoso bench` fails fast on unusable output paths, and a CPU row past the available memory is an
``oom`` row rather than the OOM killer ending the whole run (also with ``--memory none``)."""

from __future__ import annotations

import resource

import pytest
import torch
from typer.testing import CliRunner

from yoso_cli.main import app
from yoso_core import bench
from yoso_core.bench import BenchConfig

TINY = ["--seq-len", "16", "--heads", "2", "--head-dim", "8", "--num-hash", "4", "--repeats", "1"]


def _no_run(*args, **kwargs):
    raise AssertionError("the benchmark ran before the output path was checked")


@pytest.mark.parametrize("kind", ["directory", "under a file"])
def test_an_unusable_csv_path_is_one_error_line_before_the_run(tmp_path, monkeypatch, kind):
    monkeypatch.setattr(bench, "run_bench", _no_run)
    if kind == "directory":
        target, words = tmp_path, ("is a directory", "bench.csv")
    else:
        (tmp_path / "taken").write_text("x")
        target, words = tmp_path / "taken" / "out.csv", ("is a file, not a directory",)
    result = CliRunner().invoke(app, ["bench", *TINY, "--memory", "none", "--csv", str(target)])
    assert result.exit_code == 2, result.output
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error: --csv") and "Traceback" not in result.output
    for word in words:
        assert word in lines[0]


def _available_bytes() -> int:
    with open("/proc/meminfo") as f:
        for line in f:
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no MemAvailable in /proc/meminfo")


def test_a_cpu_row_past_the_available_memory_is_an_oom_row_with_memory_none(monkeypatch):
    """The row reserves (never touches) twice the available memory, as a huge length would use it."""
    real = bench.make_call
    chunk = _available_bytes() // 4

    def make_call(cfg, level, impl, seq_len, inputs=None):
        if impl != "yoso-e":
            return real(cfg, level, impl, seq_len, inputs)

        def greedy():
            held = [torch.empty(chunk, dtype=torch.uint8) for _ in range(8)]
            del held

        return greedy

    monkeypatch.setattr(bench.runner, "make_call", make_call)
    before = resource.getrlimit(resource.RLIMIT_AS)
    cfg = BenchConfig(
        seq_len=[16, 32], heads=2, head_dim=8, num_hash=4, hash_code_len=4, repeats=1, memory="none"
    )
    cfg.impls = ["sdpa", "yoso-e"]
    rows = {(r.seq_len, r.impl): r for r in bench.run_bench(cfg)}
    assert rows[(16, "sdpa")].status == rows[(32, "sdpa")].status == "ok"
    assert rows[(16, "yoso-e")].status == "oom", rows[(16, "yoso-e")].note
    assert "allocate" in rows[(16, "yoso-e")].note
    assert (rows[(32, "yoso-e")].status, rows[(32, "yoso-e")].note) == ("oom", "skipped: oom at seq 16")
    assert resource.getrlimit(resource.RLIMIT_AS) == before  # the cap is lifted after the rows
    kept = torch.empty(2 * chunk, dtype=torch.uint8)  # and large allocations work again
    del kept


def test_the_memory_guard_help_says_what_none_risks():
    result = CliRunner().invoke(app, ["bench", "--help"], env={"COLUMNS": "200"})
    assert result.exit_code == 0
    assert "OOM killer" in result.output and "reported as oom" in result.output
