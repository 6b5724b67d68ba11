"""`yoso bench` fails fast on unusable output paths."""

from __future__ import annotations

import pytest
from typer.testing import CliRunner

from yoso_cli.main import app
from yoso_core import bench

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
