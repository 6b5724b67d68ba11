"""`yoso build-kernels` and `yoso env`: the cache layout, metadata, self-check, and clear failures."""

from __future__ import annotations

import json
import shutil

import pytest
import torch
from typer.testing import CliRunner

from yoso_cli.main import app
from yoso_core import kernels_build
from yoso_core.attention import ops


def run(*args: str):
    return CliRunner().invoke(app, list(args))


def test_build_kernels_no_cuda_reports_table_metadata_and_self_check(cpu_library):
    result = run("build-kernels", "--no-cuda")
    assert result.exit_code == 0, result.output
    assert "cpu kernels" in result.output and "cuda kernels" not in result.output
    assert "self-check against the reference" in result.output
    assert result.output.count(" ok ") == 4 and "FAILED" not in result.output
    meta = json.loads(kernels_build.metadata_path("cpu").read_text())
    assert meta["torch"] == torch.__version__ and meta["cuda"] == torch.version.cuda
    assert meta["sources_hash"] == kernels_build.sources_hash()
    assert meta["library"] == "yoso_cpu.so" and meta["built_at"]
    assert kernels_build.library_path("cpu").is_file()


def test_key_changes_with_the_sources(monkeypatch, tmp_path):
    before = kernels_build.build_key()
    copy = tmp_path / "csrc"
    shutil.copytree(kernels_build.CSRC, copy)
    (copy / "common.h").write_text((copy / "common.h").read_text() + "\n// changed\n")
    monkeypatch.setattr(kernels_build, "CSRC", copy)
    after = kernels_build.build_key()
    assert before != after and after.startswith(f"torch{torch.__version__.split('+')[0]}")


def test_kernel_dir_follows_env(monkeypatch, tmp_path):
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(tmp_path))
    assert kernels_build.library_path("cpu").parent.parent == tmp_path


def test_bad_arch_is_a_usage_error():
    result = run("build-kernels", "--cuda", "--arch", "eighty")
    assert result.exit_code == 2
    assert "--arch entry 'eighty'" in result.output


def test_cuda_without_nvcc_says_so(monkeypatch):
    monkeypatch.setattr(kernels_build, "find_nvcc", lambda: None)
    result = run("build-kernels", "--cuda")
    assert result.exit_code == 2
    assert "nvcc was not found" in result.output and "--no-cuda" in result.output


def test_compiler_error_exits_1_with_the_message(monkeypatch, tmp_path):
    broken = tmp_path / "csrc"
    (broken / "cpu").mkdir(parents=True)
    (broken / "ops.cpp").write_text('#include "no_such_header_yoso.h"\n')
    monkeypatch.setattr(kernels_build, "CSRC", broken)
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(tmp_path / "cache"))
    result = run("build-kernels", "--no-cuda")
    assert result.exit_code == 1
    assert "no_such_header_yoso.h" in result.output
    assert not kernels_build.library_path("cpu").exists()


def test_env_json_reports_versions_and_kernels(cpu_library):
    result = run("env", "--json")
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["torch"] == torch.__version__
    assert report["torch_threads"] == torch.get_num_threads()
    assert report["cuda_available"] == torch.cuda.is_available()
    cpu = report["kernels"]["cpu"]
    assert cpu["built"] and cpu["loads"] and cpu["path"] == str(cpu_library.path)
    assert report["kernel_key"] == kernels_build.build_key()
    assert set(report) >= {"python", "transformers", "gpus", "nvcc", "kernel_root"}


def test_env_reports_unbuilt_kernels(monkeypatch, tmp_path):
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(tmp_path))
    monkeypatch.setattr(ops, "_status", {})
    result = run("env", "--json")
    assert result.exit_code == 0, result.output
    cpu = json.loads(result.stdout)["kernels"]["cpu"]
    assert not cpu["built"] and not cpu["loads"] and "yoso build-kernels" in cpu["error"]


def test_env_table_mentions_every_section(cpu_library):
    result = run("env")
    assert result.exit_code == 0, result.output
    for word in ("python", "torch", "transformers", "CPU threads", "GPUs", "nvcc", "cpu kernels"):
        assert word in result.output


@pytest.mark.slow
def test_fresh_build_into_a_temporary_cache(monkeypatch, tmp_path):
    """A full compile from nothing, as a new user's first `yoso build-kernels --no-cuda` does."""
    monkeypatch.setenv("YOSO_KERNEL_DIR", str(tmp_path))
    result = run("build-kernels", "--no-cuda", "--force")
    assert result.exit_code == 0, result.output
    assert kernels_build.library_path("cpu").is_file() and kernels_build.metadata_path("cpu").is_file()
    assert not list(tmp_path.rglob(".build-*"))
